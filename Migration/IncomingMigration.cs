using System.Net;
using System.Net.Sockets;
using Colo.Core.Qmp;

namespace Colo.Migration;

/// <summary>
/// The <c>-incoming</c> endpoint: listens on <c>tcp:HOST:PORT</c> or <c>unix:PATH</c> while the VM is in
/// the <c>inmigrate</c> state. Loading a migration stream is not built yet, so the first connection is
/// read far enough to report what arrived and then fails the migration with a message naming the gap,
/// as QEMU fails (and exits) on a stream it cannot load.
/// </summary>
public sealed class IncomingMigration : IDisposable
{
    /// <summary>First bytes of QEMU's migration stream: "QEVM" then version 3.</summary>
    private static readonly byte[] StreamMagic = [0x51, 0x45, 0x56, 0x4D, 0x00, 0x00, 0x00, 0x03];

    private readonly Socket _listener;
    private readonly Action<string> _onFailed;
    private readonly CancellationTokenSource _stop = new();

    private IncomingMigration(Socket listener, Action<string> onFailed)
    {
        _listener = listener;
        _onFailed = onFailed;
        _ = AcceptAsync();
    }

    /// <summary>Parses the URI and starts listening; <c>defer</c> returns null (wait for migrate-incoming).</summary>
    /// <param name="uri">As given to <c>-incoming</c>.</param>
    /// <param name="onFailed">Called (on a pool thread) with the reason when an incoming migration fails.</param>
    /// <exception cref="QmpException">Unknown protocol or the address cannot be bound.</exception>
    public static IncomingMigration? Start(string uri, Action<string> onFailed)
    {
        if (uri == "defer")
        {
            return null;
        }
        Socket listener;
        if (uri.StartsWith("tcp:", StringComparison.Ordinal))
        {
            (string host, int port) = ParseHostPort(uri[4..]);
            IPAddress address = host.Length == 0 ? IPAddress.Any : ResolveHost(host);
            listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            Bind(listener, new IPEndPoint(address, port), uri);
        }
        else if (uri.StartsWith("unix:", StringComparison.Ordinal))
        {
            listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            Bind(listener, new UnixDomainSocketEndPoint(uri[5..]), uri);
        }
        else
        {
            int colon = uri.IndexOf(':', StringComparison.Ordinal);
            string protocol = colon < 0 ? uri : uri[..colon];
            throw new QmpException(protocol is "exec" or "fd" or "rdma" or "file"
                ? $"incoming migration over '{protocol}:' is not implemented yet in Colo (tcp: and unix: are)"
                : $"unknown migration protocol: {uri}");
        }
        listener.Listen(1);
        return new IncomingMigration(listener, onFailed);
    }

    /// <summary>The bound endpoint (useful when port 0 was asked for).</summary>
    public EndPoint? LocalEndPoint => _listener.LocalEndPoint;

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        try
        {
            using Socket connection = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            byte[] header = new byte[StreamMagic.Length];
            int got = 0;
            while (got < header.Length)
            {
                int n = await connection.ReceiveAsync(header.AsMemory(got), SocketFlags.None, _stop.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }
                got += n;
            }
            _onFailed(got == header.Length && header.AsSpan().SequenceEqual(StreamMagic)
                ? "loading a migration stream is not implemented yet in Colo (the migration issue builds it)"
                : got == header.Length ? "Unknown migration stream magic" : "migration stream ended before its header");
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (SocketException e)
        {
            _onFailed(e.Message);
        }
    }

    private static void Bind(Socket listener, EndPoint endPoint, string uri)
    {
        try
        {
            listener.Bind(endPoint);
        }
        catch (SocketException e)
        {
            listener.Dispose();
            throw new QmpException($"Failed to bind socket for {uri}: {e.Message}", e);
        }
    }

    private static (string Host, int Port) ParseHostPort(string text)
    {
        int colon = text.LastIndexOf(':');
        string host = colon < 0 ? "" : text[..colon].Trim('[', ']');
        string portText = colon < 0 ? text : text[(colon + 1)..];
        if (!int.TryParse(portText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port) || port > 65535)
        {
            throw new QmpException($"error parsing port in address '{text}'");
        }
        return (host, port);
    }

    private static IPAddress ResolveHost(string host)
    {
        if (IPAddress.TryParse(host, out IPAddress? address))
        {
            return address;
        }
        try
        {
            return Dns.GetHostAddresses(host)[0];
        }
        catch (SocketException e)
        {
            throw new QmpException($"address resolution failed for {host}: {e.Message}", e);
        }
    }
}
