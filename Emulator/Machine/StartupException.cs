namespace Colo.Machine;

/// <summary>
/// A configuration error found while building the VM; printed as
/// <c>qemu-system-x86_64: CONTEXT: message</c> (or without context) and exit status 1.
/// </summary>
public sealed class StartupException(string? context, string message) : Exception(message)
{
    /// <summary>The option text the error is about (<c>-drive if=none,...</c>), or null.</summary>
    public string? Context { get; } = context;
}
