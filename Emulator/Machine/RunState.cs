namespace Colo.Machine;

/// <summary>QEMU's run states (QAPI <c>RunState</c>); <see cref="RunStateNames"/> gives the wire names.</summary>
public enum RunState
{
    Debug,
    InMigrate,
    InternalError,
    IoError,
    Paused,
    PostMigrate,
    Prelaunch,
    FinishMigrate,
    RestoreVm,
    Running,
    SaveVm,
    Shutdown,
    Suspended,
    Watchdog,
    GuestPanicked,
    Colo,
}

public static class RunStateNames
{
    public static string ToQapi(this RunState state) => state switch
    {
        RunState.Debug => "debug",
        RunState.InMigrate => "inmigrate",
        RunState.InternalError => "internal-error",
        RunState.IoError => "io-error",
        RunState.Paused => "paused",
        RunState.PostMigrate => "postmigrate",
        RunState.Prelaunch => "prelaunch",
        RunState.FinishMigrate => "finish-migrate",
        RunState.RestoreVm => "restore-vm",
        RunState.Running => "running",
        RunState.SaveVm => "save-vm",
        RunState.Shutdown => "shutdown",
        RunState.Suspended => "suspended",
        RunState.Watchdog => "watchdog",
        RunState.GuestPanicked => "guest-panicked",
        RunState.Colo => "colo",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };
}
