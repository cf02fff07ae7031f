using System.Runtime.InteropServices;

namespace Colo.Core.Chardev;

/// <summary>
/// Puts a terminal on standard input into the character-at-a-time mode QEMU's stdio backend uses (no echo, no line
/// buffering, 8-bit input, output post-processing kept; Ctrl-C stays a signal only with <c>signal=on</c>) and
/// restores the saved settings on exit. Nothing happens when stdin is not a terminal (pipes, files).
/// </summary>
internal static partial class TerminalMode
{
    // struct termios on Linux: four tcflag_t (uint) words, c_line, c_cc[32], then the speeds; 60 bytes, padded here.
    private const int TermiosSize = 64;
    private const int IflagOffset = 0;
    private const int OflagOffset = 4;
    private const int CflagOffset = 8;
    private const int LflagOffset = 12;
    private const int CcOffset = 17;
    private const int Vtime = 5;
    private const int Vmin = 6;

    // <asm-generic/termbits.h>
    private const uint Ignbrk = 0x1, Brkint = 0x2, Parmrk = 0x8, Istrip = 0x20, Inlcr = 0x40, Igncr = 0x80, Icrnl = 0x100, Ixon = 0x400;
    private const uint Opost = 0x1;
    private const uint Csize = 0x30, Cs8 = 0x30, Parenb = 0x100;
    private const uint Isig = 0x1, Icanon = 0x2, Echo = 0x8, Echonl = 0x40, Iexten = 0x8000;
    private const int TcsaNow = 0;

    private static readonly Lock Gate = new();
    private static byte[]? _saved;
    private static bool _exitHooked;

    /// <summary>Switches stdin to raw mode if it is a terminal; true if it did.</summary>
    public static bool EnterRaw(bool allowSignals)
    {
        lock (Gate)
        {
            if (isatty(0) != 1)
            {
                return false;
            }
            byte[] current = new byte[TermiosSize];
            if (tcgetattr(0, current) != 0)
            {
                return false;
            }
            _saved ??= (byte[])current.Clone();
            byte[] raw = current;
            Update(raw, IflagOffset, clear: Ignbrk | Brkint | Parmrk | Istrip | Inlcr | Igncr | Icrnl | Ixon, set: 0);
            Update(raw, OflagOffset, clear: 0, set: Opost);
            Update(raw, LflagOffset, clear: Echo | Echonl | Icanon | Iexten | (allowSignals ? 0 : Isig), set: 0);
            Update(raw, CflagOffset, clear: Csize | Parenb, set: Cs8);
            raw[CcOffset + Vmin] = 1;
            raw[CcOffset + Vtime] = 0;
            if (tcsetattr(0, TcsaNow, raw) != 0)
            {
                return false;
            }
            if (!_exitHooked)
            {
                // Also restores after paths that never dispose the chardev (Environment.Exit).
                AppDomain.CurrentDomain.ProcessExit += (_, _) => Restore();
                _exitHooked = true;
            }
            return true;
        }
    }

    /// <summary>Puts the terminal back as it was before <see cref="EnterRaw"/>.</summary>
    public static void Restore()
    {
        lock (Gate)
        {
            if (_saved is not null)
            {
                _ = tcsetattr(0, TcsaNow, _saved);
                _saved = null;
            }
        }
    }

    private static void Update(byte[] termios, int offset, uint clear, uint set)
    {
        uint value = BitConverter.ToUInt32(termios, offset);
        value = (value & ~clear) | set;
        BitConverter.TryWriteBytes(termios.AsSpan(offset, 4), value);
    }

    [LibraryImport("libc", EntryPoint = "isatty")]
    private static partial int isatty(int fd);

    [LibraryImport("libc", EntryPoint = "tcgetattr", SetLastError = true)]
    private static partial int tcgetattr(int fd, [Out] byte[] termios);

    [LibraryImport("libc", EntryPoint = "tcsetattr", SetLastError = true)]
    private static partial int tcsetattr(int fd, int optionalActions, [In] byte[] termios);
}
