using System.Diagnostics;
using System.Text;
using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Net;

/// <summary>
/// <c>-netdev tap</c>: frames to and from a host tap interface, one frame per read/write on the tap descriptor
/// (IFF_NO_PI, no vnet header). <c>fd=N</c> adopts an inherited tap descriptor (checked with TUNGETIFF, as QEMU
/// does); <c>ifname=</c> (or none) opens <c>/dev/net/tun</c> with TUNSETIFF and runs <c>script=</c> unless it is
/// <c>no</c>. A reader thread polls the descriptor and an eventfd that wakes it for deletion.
/// </summary>
public sealed unsafe class TapNetdev : NetClient
{
    private const string DefaultScript = "/etc/qemu-ifup";
    private const string DefaultDownScript = "/etc/qemu-ifdown";

    private readonly byte[] _readBuffer = new byte[StreamFrameReader.MaxFrame];
    private int _fd = -1;
    private int _wake = -1;
    private string? _ifname;
    private string? _downScript;
    private Thread? _thread;
    private volatile bool _disposed;

    internal TapNetdev(ObjectTypeInfo type, PropertyValues values, string id, NetClients net)
        : base(type, values, id, net)
    {
    }

    /// <summary>The interface name (from the kernel for <c>ifname=</c>), null for an adopted fd.</summary>
    public string? InterfaceName => _ifname;

    /// <inheritdoc/>
    public override void Complete()
    {
        PropertyValues v = Values;
        if (v.GetString("fd") is string fdText)
        {
            if (v.Contains("ifname") || v.Contains("script") || v.Contains("downscript") || v.Contains("vnet_hdr") || v.Contains("helper")
                || v.Contains("queues") || v.Contains("fds") || v.Contains("vhostfds"))
            {
                throw new QmpException("ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, fds=, and vhostfds= are invalid with fd=");
            }
            CheckUnsupported(v);
            int fd = NetdevFd.Parse(fdText);
            NetdevFd.CheckOpen(Id, fd, setNonBlocking: true);
            NetNative.IfReq req = default;
            if (NetNative.Ioctl(fd, NetNative.TunGetIff, &req) < 0)
            {
                throw new QmpException($"Unable to query TUNGETIFF on FD {fd}: {NetNative.LastErrorText()}");
            }
            _fd = fd;
            InfoString = $"fd={fd}";
        }
        else
        {
            if (v.Contains("fds"))
            {
                throw new QmpException("-netdev tap,fds= (multiqueue tap) is not supported yet in Colo");
            }
            if (v.Contains("helper") || v.Contains("br"))
            {
                throw new QmpException("-netdev tap,helper= (qemu-bridge-helper, /usr/lib/qemu/qemu-bridge-helper) is not supported yet in Colo; create the tap yourself and pass ifname= or fd=");
            }
            CheckUnsupported(v);
            if (v.Contains("vnet_hdr") && v.GetBool("vnet_hdr"))
            {
                throw new QmpException("-netdev tap,vnet_hdr=on is not supported yet in Colo (no NIC consumes the virtio-net header)");
            }
            OpenTap(v.GetString("ifname") ?? "");
            string script = v.GetString("script") ?? DefaultScript;
            string downScript = v.GetString("downscript") ?? DefaultDownScript;
            InfoString = $"ifname={_ifname},script={script},downscript={downScript}";
            if (script != "no")
            {
                RunScript(script);
            }
            _downScript = downScript == "no" ? null : downScript;
        }
        _wake = NetNative.EventFd(0, NetNative.EfdCloExec | NetNative.EfdNonBlock);
        if (_wake < 0)
        {
            throw new QmpException($"eventfd: {NetNative.LastErrorText()}");
        }
        _thread = new Thread(Run) { IsBackground = true, Name = "netdev-" + Id };
        _thread.Start();
    }

    /// <inheritdoc/>
    public override int Receive(ReadOnlySpan<byte> frame)
    {
        fixed (byte* p = frame)
        {
            // A full tap queue (EAGAIN) drops the frame, as the kernel does for a slow reader; QEMU queues it instead.
            _ = NetNative.Write(_fd, p, (nuint)frame.Length);
        }
        return frame.Length;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            if (_wake >= 0)
            {
                ulong one = 1;
                _ = NetNative.Write(_wake, (byte*)&one, sizeof(ulong));
                _thread?.Join(TimeSpan.FromSeconds(5));
                NetNative.Close(_wake);
            }
            if (_fd >= 0)
            {
                NetNative.Close(_fd);
                _fd = -1;
            }
            if (_downScript is not null && _ifname is not null)
            {
                try
                {
                    RunScript(_downScript);
                }
                catch (QmpException e)
                {
                    Net.Report(e.Message);
                }
            }
        }
        base.Dispose(disposing);
    }

    private static void CheckUnsupported(PropertyValues v)
    {
        if (v.GetBool("vhost") || v.Contains("vhostfd") || v.Contains("vhostfds") || v.GetBool("vhostforce"))
        {
            throw new QmpException("-netdev tap,vhost= (vhost-net) is not supported yet in Colo");
        }
        if (v.Contains("queues") && v.GetUInt("queues") > 1)
        {
            throw new QmpException("-netdev tap,queues= (multiqueue tap) is not supported yet in Colo");
        }
    }

    private void OpenTap(string ifname)
    {
        if (Encoding.UTF8.GetByteCount(ifname) >= NetNative.IfNameSize)
        {
            throw new QmpException($"could not configure /dev/net/tun ({ifname}): Invalid argument");
        }
        int fd = NetNative.Open("/dev/net/tun", NetNative.ORdWr | NetNative.OCloExec | NetNative.ONonBlock);
        if (fd < 0)
        {
            throw new QmpException($"could not open /dev/net/tun: {NetNative.LastErrorText()}");
        }
        NetNative.IfReq req = default;
        req.Flags = NetNative.IffTap | NetNative.IffNoPi;
        Encoding.UTF8.GetBytes(ifname, new Span<byte>(req.Name, NetNative.IfNameSize));
        if (NetNative.Ioctl(fd, NetNative.TunSetIff, &req) < 0)
        {
            string error = NetNative.LastErrorText();
            NetNative.Close(fd);
            throw new QmpException(ifname.Length > 0 ? $"could not configure /dev/net/tun ({ifname}): {error}" : $"could not configure /dev/net/tun: {error}");
        }
        var name = new ReadOnlySpan<byte>(req.Name, NetNative.IfNameSize);
        int end = name.IndexOf((byte)0);
        _ifname = Encoding.UTF8.GetString(end < 0 ? name : name[..end]);
        _fd = fd;
    }

    private void RunScript(string script)
    {
        try
        {
            using Process p = Process.Start(new ProcessStartInfo(script, [_ifname!]) { UseShellExecute = false })!;
            p.WaitForExit();
            if (p.ExitCode != 0)
            {
                throw new QmpException($"network script {script} failed with status {p.ExitCode}");
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new QmpException($"could not launch network script {script}: {e.Message}");
        }
    }

    private void Run()
    {
        NetNative.PollFd* fds = stackalloc NetNative.PollFd[2];
        fds[0] = new NetNative.PollFd { Fd = _fd, Events = NetNative.PollIn };
        fds[1] = new NetNative.PollFd { Fd = _wake, Events = NetNative.PollIn };
        while (!_disposed)
        {
            fds[0].REvents = 0;
            fds[1].REvents = 0;
            if (NetNative.Poll(fds, 2, -1) < 0)
            {
                if (NetNative.LastError() == NetNative.EIntr)
                {
                    continue;
                }
                return;
            }
            if (fds[1].REvents != 0)
            {
                return;
            }
            if (fds[0].REvents == 0)
            {
                continue;
            }
            nint n;
            fixed (byte* buffer = _readBuffer)
            {
                n = NetNative.Read(_fd, buffer, (nuint)_readBuffer.Length);
            }
            if (n < 0)
            {
                if (NetNative.LastError() == NetNative.EAgain)
                {
                    continue;
                }
                return;
            }
            lock (Net.Lock)
            {
                Send(_readBuffer.AsSpan(0, (int)n));
            }
        }
    }
}
