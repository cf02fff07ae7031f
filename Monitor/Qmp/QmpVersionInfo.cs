namespace Colo.Monitor.Qmp;

/// <summary>What the greeting reports: the QEMU release whose interface is matched, and Colo's own package string.</summary>
/// <param name="Major">QEMU major version, e.g. 7.</param>
/// <param name="Minor">QEMU minor version, e.g. 2.</param>
/// <param name="Micro">QEMU micro version, e.g. 0.</param>
/// <param name="Package">Free text after the version, e.g. "Colo 0.1.0".</param>
public sealed record QmpVersionInfo(int Major, int Minor, int Micro, string Package);
