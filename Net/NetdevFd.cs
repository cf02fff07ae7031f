using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Colo.Core.Qmp;

namespace Colo.Net;

/// <summary>Option parsing shared by the backends: inherited descriptor numbers and <c>host:port</c> addresses.</summary>
internal static class NetdevFd
{
    /// <summary>QEMU's monitor_fd_param for a number: digits only.</summary>
    public static int Parse(string text)
    {
        if (text.Length == 0 || !int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int fd))
        {
            throw new QmpException($"Invalid file descriptor number '{text}'");
        }
        return fd;
    }

    /// <summary>Fails as QEMU does when the number names no open descriptor.</summary>
    public static void CheckOpen(string id, int fd, bool setNonBlocking)
    {
        if (NetNative.CheckFd(fd, setNonBlocking) is string error)
        {
            throw new QmpException($"{id}: Can't use file descriptor {fd}: {error}");
        }
    }

    /// <summary>QEMU's parse_host_port: <c>host:port</c>, an empty host meaning any address.</summary>
    public static IPEndPoint ParseHostPort(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon < 0)
        {
            throw new QmpException($"host address '{text}' doesn't contain ':' separating host from port");
        }
        string host = text[..colon];
        string port = text[(colon + 1)..];
        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int portNumber) || portNumber > ushort.MaxValue)
        {
            throw new QmpException($"port number '{port}' is invalid");
        }
        IPAddress address;
        if (host.Length == 0)
        {
            address = IPAddress.Any;
        }
        else if (!IPAddress.TryParse(host, out address!) || address.AddressFamily != AddressFamily.InterNetwork)
        {
            try
            {
                address = Array.Find(Dns.GetHostAddresses(host), a => a.AddressFamily == AddressFamily.InterNetwork)
                    ?? throw new SocketException((int)SocketError.HostNotFound);
            }
            catch (SocketException)
            {
                throw new QmpException($"can't resolve host address '{host}'");
            }
        }
        return new IPEndPoint(address, portNumber);
    }
}
