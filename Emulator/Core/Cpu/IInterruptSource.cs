namespace Colo.Core.Cpu;

/// <summary>
/// The interrupt controller as a vCPU sees it (LAPIC, or the PIC through it). The controller calls the vCPU's
/// interrupt-request notification when a line becomes pending; the vCPU acknowledges only when it can take an
/// interrupt (RFLAGS.IF set, at an instruction boundary), so the controller moves the vector to in-service then.
/// </summary>
public interface IInterruptSource
{
    /// <summary>Returns the highest-priority deliverable vector and marks it in service, or false if none is pending.</summary>
    bool TryAcknowledge(out byte vector);
}
