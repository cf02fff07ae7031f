using System.Diagnostics;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Net;

/// <summary>
/// Netdevs adopting inherited descriptors under the qtest accelerator (<c>-accel qtest -qtest stdio</c>), as test
/// harnesses run them: a stream socketpair end (4-byte length framing) and a datagram socketpair end (one frame per
/// datagram, no prefix) joined by a hub. SO_TYPE decides the framing, as in QEMU. .NET cannot hand a child arbitrary
/// descriptors, so a small Python launcher creates the pairs and starts the emulator.
/// </summary>
[TestFixture]
public sealed class InheritedNetdevFdTests
{
    private const string Launcher = """
        import os, socket, struct, subprocess, sys
        qemu = sys.argv[1]
        smine, stheirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        dmine, dtheirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (stheirs, dtheirs):
            os.set_inheritable(s.fileno(), True)
        sfd, dfd = stheirs.fileno(), dtheirs.fileno()
        proc = subprocess.Popen([qemu, '-M', 'pc', '-accel', 'qtest', '-nodefaults', '-display', 'none',
            '-qtest', 'stdio', '-qtest-log', 'none',
            '-netdev', 'socket,id=s,fd=%d' % sfd, '-netdev', 'hubport,id=hs,hubid=0,netdev=s',
            '-netdev', 'socket,id=d,fd=%d' % dfd, '-netdev', 'hubport,id=hd,hubid=0,netdev=d'],
            pass_fds=[sfd, dfd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        stheirs.close(); dtheirs.close()
        for s in (smine, dmine):
            s.settimeout(10)
        proc.stdin.write('endianness\n'); proc.stdin.flush()
        print('qtest:', proc.stdout.readline().strip())
        frame = bytes(range(60))
        smine.sendall(struct.pack('>I', len(frame)) + frame)
        print('stream->dgram:', dmine.recv(2000) == frame)
        dmine.send(b'\xaa' * 42)
        got = b''
        while len(got) < 46:
            got += smine.recv(46 - len(got))
        print('dgram->stream:', got == struct.pack('>I', 42) + b'\xaa' * 42)
        # qtest has no quit command: end the emulator as a harness does, with SIGTERM.
        proc.terminate()
        proc.wait(20)
        print('ended')
        """;

    [Test]
    public void QtestRun_SocketNetdevsAdoptStreamAndDatagramFds_WithMatchingFraming()
    {
        Assume.That(File.Exists("/usr/bin/python3"), "needs python3 to pass descriptors");
        string dir = Directory.CreateTempSubdirectory("colo-netfd-").FullName;
        try
        {
            string script = Path.Combine(dir, "launch.py");
            File.WriteAllText(script, Launcher);
            var start = new ProcessStartInfo("/usr/bin/python3", [script, ColoBinaries.QemuSystem])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using Process p = Process.Start(start)!;
            Task<string> stderr = p.StandardError.ReadToEndAsync();
            string stdout = p.StandardOutput.ReadToEnd();
            Assert.That(p.WaitForExit(30_000), Is.True, "launcher finished");
            Assert.That(stdout, Is.EqualTo(
                "qtest: OK little\n" +
                "stream->dgram: True\n" +
                "dgram->stream: True\n" +
                "ended\n"), stderr.Result);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
