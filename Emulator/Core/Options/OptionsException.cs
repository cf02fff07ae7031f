using Colo.Core.Qmp;

namespace Colo.Core.Options;

/// <summary>A malformed option string or value; the text is QEMU's.</summary>
public sealed class OptionsException(string description) : QmpException(description);
