using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Colo.Block.Nbd;
using static Colo.Block.Nbd.NbdProtocol;

namespace Colo.Tests.Unit.Block.Nbd;

/// <summary>
/// A randomized NBD request fuzzer with fixed seeds: each connection sends well-formed requests checked
/// against a model of the disk, then maybe one hostile frame (garbage, bad magic, unknown command, huge or
/// overflowing ranges, truncated writes, option junk). The server must answer with an NBD error or drop
/// the connection, keep serving others, and never let a hostile frame change the disk.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class NbdRequestFuzzTests
{
    private const int Size = 1 << 20;
    private NbdServer _server = null!;
    private MemoryNode _disk = null!;
    private byte[] _model = null!;

    [SetUp]
    public void SetUp()
    {
        _disk = new MemoryNode(Size);
        new Random(7).NextBytes(_disk.Data);
        _model = (byte[])_disk.Data.Clone();
        _server = NbdServer.StartTcp(new IPEndPoint(IPAddress.Loopback, 0));
        _server.AddExport("disk", _disk, writable: true);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _server.DisposeAsync();
        _disk.Dispose();
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Fuzz_RandomRequestStreams_ServerSurvivesAndDiskMatchesModel(int seed)
    {
        var rng = new Random(seed);
        for (int connection = 0; connection < 150; connection++)
        {
            using var peer = new RawNbdPeer(_server.Port);
            if (rng.Next(8) == 0)
            {
                HostileHandshake(peer, rng);
                continue;
            }
            peer.Connect("disk");
            int requests = rng.Next(1, 25);
            for (int i = 0; i < requests; i++)
            {
                WellFormed(peer, rng, (ulong)i);
            }
            if (rng.Next(2) == 0)
            {
                Hostile(peer, rng);
            }
        }

        // Still serving, and the disk holds exactly what the well-formed writes put there.
        using NbdClient client = NbdClient.ConnectTcp("127.0.0.1", _server.Port, "disk");
        byte[] all = new byte[Size];
        client.Read(0, all);
        Assert.That(all, Is.EqualTo(_model));
        Assert.That(_disk.Data, Is.EqualTo(_model));
    }

    /// <summary>A valid request, its reply checked (simple replies) and the model updated.</summary>
    private void WellFormed(RawNbdPeer peer, Random rng, ulong cookie)
    {
        int length = rng.Next(4) switch { 0 => rng.Next(1, 16), 1 => 512 * rng.Next(1, 9), 2 => 4096 * rng.Next(1, 17), _ => rng.Next(1, 70_000) };
        long offset = rng.Next(Size - length + 1);
        ushort flags = rng.Next(4) == 0 ? CmdFlagFua : (ushort)0;
        switch (rng.Next(6))
        {
            case 0:
            case 1:
            {
                peer.Request(CmdRead, (ulong)offset, (uint)length, 0, cookie);
                Assert.That(peer.SimpleReply(cookie), Is.Zero, "read error");
                Assert.That(peer.Receive(length), Is.EqualTo(_model.AsSpan((int)offset, length).ToArray()), $"read {offset}+{length}");
                break;
            }
            case 2:
            case 3:
            {
                byte[] data = new byte[length];
                rng.NextBytes(data);
                peer.Request(CmdWrite, (ulong)offset, (uint)length, flags, cookie);
                peer.Send(data);
                Assert.That(peer.SimpleReply(cookie), Is.Zero, "write error");
                data.CopyTo(_model, offset);
                break;
            }
            case 4:
            {
                peer.Request(CmdWriteZeroes, (ulong)offset, (uint)length, flags, cookie);
                Assert.That(peer.SimpleReply(cookie), Is.Zero, "write-zeroes error");
                _model.AsSpan((int)offset, length).Clear();
                break;
            }
            default:
            {
                peer.Request(CmdFlush, 0, 0, 0, cookie);
                Assert.That(peer.SimpleReply(cookie), Is.Zero, "flush error");
                break;
            }
        }
    }

    /// <summary>One hostile frame: the answer must be an NBD error reply or a closed connection, never data or a hang.</summary>
    private static void Hostile(RawNbdPeer peer, Random rng)
    {
        const ulong cookie = 0xbad;
        switch (rng.Next(8))
        {
            case 0:
                byte[] junk = new byte[rng.Next(1, 300)];
                rng.NextBytes(junk);
                peer.Send(junk);
                return; // whatever the server makes of junk, the next connection and the final check tell
            case 1:
                peer.Request(CmdRead, 0, 512, 0, cookie, magic: (uint)rng.Next());
                Assert.That(ErrorOrClosed(peer, cookie), Is.True, "bad magic");
                return;
            case 2:
                peer.Request((ushort)rng.Next(8, 65536), (ulong)rng.Next(Size), (uint)rng.Next(1, 4096), 0, cookie);
                Assert.That(ErrorOrClosed(peer, cookie), Is.True, "unknown command");
                return;
            case 3:
                peer.Request(CmdRead, 0, (uint)rng.Next(64 << 20, int.MaxValue), 0, cookie);
                Assert.That(ErrorOrClosed(peer, cookie), Is.True, "huge read");
                return;
            case 4:
                peer.Request(rng.Next(2) == 0 ? CmdRead : CmdWriteZeroes, ulong.MaxValue - (ulong)rng.Next(0, 4096), (uint)rng.Next(1, 8192), 0, cookie);
                Assert.That(ErrorOrClosed(peer, cookie), Is.True, "overflowing range");
                return;
            case 5:
                peer.Request(rng.Next(2) == 0 ? CmdTrim : CmdRead, (ulong)(Size - rng.Next(0, 512)), (uint)rng.Next(1024, 65536), 0, cookie);
                Assert.That(ErrorOrClosed(peer, cookie), Is.True, "range past the end");
                return;
            case 6:
                // A write whose payload never fully arrives: the half-sent data must not reach the disk.
                peer.Request(CmdWrite, (ulong)rng.Next(Size - 8192), 8192, 0, cookie);
                byte[] part = new byte[rng.Next(0, 8192)];
                rng.NextBytes(part);
                peer.Send(part);
                return;
            default:
                // A write past the end with its payload: refused, nothing written.
                byte[] data = new byte[4096];
                rng.NextBytes(data);
                peer.Request(CmdWrite, (ulong)(Size - 1024), 4096, 0, cookie);
                peer.Send(data);
                Assert.That(ErrorOrClosed(peer, cookie), Is.True, "write past the end");
                return;
        }
    }

    private static void HostileHandshake(RawNbdPeer peer, Random rng)
    {
        peer.Greeting();
        peer.ClientFlags(rng.Next(3) == 0 ? (uint)rng.Next() : FlagFixedNewstyle | FlagNoZeroes);
        for (int i = rng.Next(1, 4); i > 0; i--)
        {
            byte[] data = new byte[rng.Next(0, 64)];
            rng.NextBytes(data);
            uint option = rng.Next(3) switch { 0 => (uint)rng.Next(), 1 => OptGo, _ => (uint)rng.Next(0, 12) };
            if (option == OptExportName || option == OptAbort)
            {
                option = OptList;
            }
            try
            {
                if (rng.Next(4) == 0)
                {
                    // A length far beyond the data sent: the server must not wait for or allocate 4 GiB.
                    byte[] h = new byte[16];
                    BinaryPrimitives.WriteUInt64BigEndian(h, IHaveOpt);
                    BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(8), option);
                    BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(12), uint.MaxValue - (uint)rng.Next(1000));
                    peer.Send(h);
                    return;
                }
                peer.Option(option, data);
            }
            catch (SocketException)
            {
                return; // the server already hung up, which is an allowed answer
            }
        }
    }

    /// <summary>True when the server answers with a simple reply carrying a non-zero error, or closes.</summary>
    private static bool ErrorOrClosed(RawNbdPeer peer, ulong cookie)
    {
        try
        {
            byte[] r = peer.Receive(16);
            return BinaryPrimitives.ReadUInt32BigEndian(r) == SimpleReplyMagic
                && BinaryPrimitives.ReadUInt64BigEndian(r.AsSpan(8)) == cookie
                && BinaryPrimitives.ReadUInt32BigEndian(r.AsSpan(4)) != 0;
        }
        catch (EndOfStreamException)
        {
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return true;
        }
    }
}
