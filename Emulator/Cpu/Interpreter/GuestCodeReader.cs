using Iced.Intel;

namespace Colo.Cpu.Interpreter;

/// <summary>
/// Feeds the reused iced decoders straight from guest RAM. One instance per vCPU; <see cref="Reset"/> points it at
/// a new window before each block, so decoding allocates nothing.
/// </summary>
internal sealed unsafe class GuestCodeReader : CodeReader
{
    private byte* _data;
    private int _length;
    private int _position;

    public int Position => _position;

    /// <summary>A byte of the current window already decoded (index &lt; <see cref="Position"/>).</summary>
    public byte ByteAt(int index) => _data[index];

    public void Reset(byte* data, int length)
    {
        _data = data;
        _length = length;
        _position = 0;
    }

    public override int ReadByte()
    {
        if (_position >= _length)
        {
            return -1;
        }
        // SAFETY: _position < _length and Reset's caller guarantees [_data, _data + _length) is readable.
        return _data[_position++];
    }
}
