namespace Colo.Tests.Unit.Monitor;

/// <summary>Input bytes and QEMU 7.2's reply bytes (after the greeting); one char per byte.</summary>
internal static class QemuTranscriptData
{
    public static readonly (string Input, string Expected)[] Cases =
    [
//CASES
    ];
}
