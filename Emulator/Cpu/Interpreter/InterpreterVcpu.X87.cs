namespace Colo.Cpu.Interpreter;

/// <summary>Memory helpers the x87 handlers need (odd-sized images: 10-byte reals, 14/28/94/108-byte environments).</summary>
public sealed unsafe partial class InterpreterVcpu
{
    internal bool ProbeWritable(ulong linear) => ProbeWrite(linear);

    internal ulong WrapAddress(ulong linear) => WrapLinear(linear);

    /// <summary>Writes an even-length block after checking its first and last byte are writable, so a fault changes nothing.</summary>
    internal ExecStatus WriteBlockBytes(ulong linear, ReadOnlySpan<byte> bytes)
    {
        if (!ProbeWrite(linear) || !ProbeWrite(WrapLinear(linear + (ulong)bytes.Length - 1)))
        {
            return ExecStatus.Fault;
        }
        for (int i = 0; i < bytes.Length; i += 2)
        {
            ExecStatus s = WriteMem(WrapLinear(linear + (ulong)i), 2, (ulong)(bytes[i] | (bytes[i + 1] << 8)));
            if (s != ExecStatus.Continue)
            {
                return s;
            }
        }
        return ExecStatus.Continue;
    }
}
