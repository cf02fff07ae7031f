using System.Diagnostics;
using Colo.Tests.EndToEnd.Infrastructure;

namespace Colo.Tests.EndToEnd.Net;

/// <summary>
/// <c>-netdev tap</c> in a network namespace the test creates (so no host interface is touched): the tap is joined by
/// a hub to a socket netdev on the namespace's loopback; an AF_PACKET socket on the tap plays the host side. Frames
/// written into the tap come out of the socket framed, and the other way round. Runs once with <c>ifname=</c> (Colo
/// opens /dev/net/tun) and once with <c>fd=N</c> (the launcher opens the tap and passes the descriptor).
/// </summary>
[TestFixture]
public sealed class TapNetdevTests
{
    private const string Launcher = """
        import fcntl, json, os, socket, struct, subprocess, sys, time
        qemu, mode, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
        pass_fds = []
        if mode == 'fd':
            tun = os.open('/dev/net/tun', os.O_RDWR)
            fcntl.ioctl(tun, 0x400454ca, struct.pack('16sH', b'colotap0', 0x0002 | 0x1000))
            os.set_inheritable(tun, True)
            pass_fds = [tun]
            netdev = 'tap,id=t,fd=%d' % tun
        else:
            netdev = 'tap,id=t,ifname=colotap0,script=no,downscript=no'
        proc = subprocess.Popen([qemu, '-M', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio',
            '-netdev', netdev, '-netdev', 'hubport,id=ht,hubid=0,netdev=t',
            '-netdev', 'socket,id=s,listen=127.0.0.1:%d' % port, '-netdev', 'hubport,id=hs,hubid=0,netdev=s'],
            pass_fds=pass_fds, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if pass_fds:
            os.close(tun)
        proc.stdout.readline()
        def hmp(cmd):
            proc.stdin.write('{"execute": "human-monitor-command", "arguments": {"command-line": "%s"}}\n' % cmd); proc.stdin.flush()
            while True:
                line = proc.stdout.readline()
                if '"return"' in line or '"error"' in line:
                    return json.loads(line).get('return', line)
        proc.stdin.write('{"execute": "qmp_capabilities"}\n'); proc.stdin.flush(); proc.stdout.readline()
        subprocess.run(['ip', 'link', 'set', 'colotap0', 'up'], check=True)
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
        raw.bind(('colotap0', 0))
        raw.settimeout(10)
        c = socket.create_connection(('127.0.0.1', port)); c.settimeout(10)
        while 'connection from' not in hmp('info network'):
            time.sleep(0.02)
        print('info:', [l for l in hmp('info network').split('\r\n') if 'type=tap' in l][0].strip())
        # 0x88b5 is the IEEE local experimental ethertype: nothing in the namespace answers it.
        frame = b'\x02\x00\x00\x00\x00\x01' + b'\x02\x00\x00\x00\x00\x02' + b'\x88\xb5' + bytes(range(46))
        raw.send(frame)
        got = b''
        while True:
            while len(got) < 4:
                got += c.recv(4096)
            n = struct.unpack('>I', got[:4])[0]
            while len(got) < 4 + n:
                got += c.recv(4096)
            if got[4:4 + n] == frame:
                break
            got = got[4 + n:]  # the kernel's own frames (IPv6 router solicitations...) pass too
        print('tap->socket: True')
        back = b'\x02\x00\x00\x00\x00\x02' + b'\x02\x00\x00\x00\x00\x03' + b'\x88\xb5' + b'\x55' * 46
        c.sendall(struct.pack('>I', len(back)) + back)
        while raw.recv(2000) != back:
            pass
        print('socket->tap: True')
        proc.stdin.write('{"execute": "quit"}\n'); proc.stdin.flush()
        print('status:', proc.wait(20))
        """;

    [TestCase("ifname", "index=0,type=tap,ifname=colotap0,script=no,downscript=no")]
    [TestCase("fd", "index=0,type=tap,fd=")]
    public void TapInNamespace_ExchangesFramesWithASocketNetdev(string mode, string infoStart)
    {
        Assume.That(Environment.UserName == "root" || Environment.GetEnvironmentVariable("USER") == "root", "needs root for ip netns and /dev/net/tun");
        Assume.That(File.Exists("/dev/net/tun"), "needs /dev/net/tun");
        Assume.That(File.Exists("/usr/bin/python3") && (File.Exists("/usr/sbin/ip") || File.Exists("/usr/bin/ip")), "needs python3 and ip");
        string ns = $"colo-tap-{Environment.ProcessId}-{mode}";
        string dir = Directory.CreateTempSubdirectory("colo-tap-").FullName;
        try
        {
            (int code, string addError) = Run("ip", "netns", "add", ns);
            Assume.That(code, Is.Zero, "ip netns add: " + addError);
            string script = Path.Combine(dir, "launch.py");
            File.WriteAllText(script, Launcher);
            var start = new ProcessStartInfo("ip", ["netns", "exec", ns, "/usr/bin/python3", script, ColoBinaries.QemuSystem, mode, "4567"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using Process p = Process.Start(start)!;
            Task<string> stderr = p.StandardError.ReadToEndAsync();
            string stdout = p.StandardOutput.ReadToEnd();
            Assert.That(p.WaitForExit(30_000), Is.True, "launcher finished");
            string[] lines = stdout.Split('\n');
            Assert.Multiple(() =>
            {
                Assert.That(lines[0], Does.StartWith("info: \\ ht: t: " + infoStart), stderr.Result);
                Assert.That(lines[1..], Is.EqualTo(new[] { "tap->socket: True", "socket->tap: True", "status: 0", "" }), stderr.Result);
            });
        }
        finally
        {
            Run("ip", "netns", "del", ns);
            Directory.Delete(dir, recursive: true);
        }
    }

    private static (int Code, string Stderr) Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true };
        using Process p = Process.Start(start)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, err);
    }
}
