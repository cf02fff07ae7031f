using System.Diagnostics;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Machine;

/// <summary>
/// Chardevs adopting inherited sockets (<c>-chardev socket,fd=N</c>), as libvirt and test harnesses pass them: a
/// connected one (a socketpair end) carries qtest, a listening one (server=on) a QMP monitor. .NET cannot hand a
/// child arbitrary descriptors, so a small Python launcher creates the sockets and starts the emulator.
/// </summary>
[TestFixture]
public sealed class InheritedFdTests
{
    private const string Launcher = """
        import json, os, socket, subprocess, sys
        qemu, path = sys.argv[1], sys.argv[2]
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(1)
        mine, theirs = socket.socketpair()
        for s in (listener, theirs):
            os.set_inheritable(s.fileno(), True)
        proc = subprocess.Popen([qemu, '-M', 'pc', '-accel', 'qtest', '-nodefaults', '-display', 'none',
            '-chardev', 'socket,id=q,fd=%d' % theirs.fileno(), '-qtest', 'chardev:q', '-qtest-log', 'none',
            '-chardev', 'socket,id=m,fd=%d,server=on,wait=off' % listener.fileno(), '-mon', 'chardev=m,mode=control'],
            pass_fds=[listener.fileno(), theirs.fileno()])
        listener.close(); theirs.close()
        qtest = mine.makefile('rw')
        qtest.write('endianness\n'); qtest.flush()
        print('qtest:', qtest.readline().strip())
        qmp = socket.socket(socket.AF_UNIX); qmp.connect(path)
        lines = qmp.makefile('rw')
        print('greeting:', 'QMP' in json.loads(lines.readline()))
        for cmd in ('qmp_capabilities', 'query-chardev', 'quit'):
            lines.write(json.dumps({'execute': cmd}) + '\n'); lines.flush()
            while True:
                reply = json.loads(lines.readline())
                if 'event' not in reply:
                    break
            result = reply['return']
            if isinstance(result, list):
                result.sort(key=lambda c: c['label'])
            print(cmd + ':', json.dumps(result, sort_keys=True))
        print('status:', proc.wait(20))
        """;

    [Test]
    public void SocketChardevs_AdoptConnectedAndListeningFds()
    {
        Assume.That(File.Exists("/usr/bin/python3"), "needs python3 to pass descriptors");
        string dir = Directory.CreateTempSubdirectory("colo-fd-").FullName;
        try
        {
            string script = Path.Combine(dir, "launch.py");
            File.WriteAllText(script, Launcher);
            var start = new ProcessStartInfo("/usr/bin/python3", [script, ColoBinaries.QemuSystem, Path.Combine(dir, "qmp.sock")])
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
                "greeting: True\n" +
                "qmp_capabilities: {}\n" +
                $"query-chardev: [{{\"filename\": \"unix:{dir}/qmp.sock,server=on\", \"frontend-open\": true, \"label\": \"m\"}}, {{\"filename\": \"unix:\", \"frontend-open\": true, \"label\": \"q\"}}]\n" +
                "quit: {}\n" +
                "status: 0\n"), stderr.Result);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void SocketChardev_BadFd_QemuTexts()
    {
        (int code, _, string stderr) = QemuProcess.Run("-M", "none", "-display", "none", "-chardev", "socket,id=c,fd=987");
        Assert.That((code, stderr), Is.EqualTo((1, "qemu-system-x86_64: -chardev socket,id=c,fd=987: File descriptor '987' is not a socket\n")));
        (code, _, stderr) = QemuProcess.Run("-M", "none", "-display", "none", "-chardev", "socket,id=c,fd=abc");
        Assert.That((code, stderr), Is.EqualTo((1, "qemu-system-x86_64: -chardev socket,id=c,fd=abc: Unable to parse FD number abc\n")));
        (code, _, stderr) = QemuProcess.Run("-M", "none", "-display", "none", "-chardev", "socket,id=c,fd=3,path=/tmp/x");
        Assert.That((code, stderr), Is.EqualTo((1, "qemu-system-x86_64: -chardev socket,id=c,fd=3,path=/tmp/x: None or one of 'path', 'fd' or 'host' option required.\n")));
    }
}
