namespace Colo.Block.Jobs;

/// <summary>QAPI's JobStatus: where a job is in its life (job.json). Names are the wire names.</summary>
public enum JobStatus
{
    Undefined,
    Created,
    Running,
    Paused,
    Ready,
    Standby,
    Waiting,
    Pending,
    Aborting,
    Concluded,
    Null,
}

/// <summary>QAPI's JobVerb: the commands a client may send to a job.</summary>
public enum JobVerb
{
    Cancel,
    Pause,
    Resume,
    SetSpeed,
    Complete,
    Dismiss,
    Finalize,
    Change,
}

/// <summary>
/// QEMU's job state machine as two tables: which status may follow which, and which verbs each status
/// accepts. A move the table refuses is a programming error; a verb it refuses is the client's
/// (QEMU's "cannot accept command verb" error).
/// </summary>
public static class JobStateMachine
{
    private const int Count = (int)JobStatus.Null + 1;

    // Rows: from; columns: to. U C R P Y S W D X E N
    private static readonly bool[,] s_transitions = Table(
        "01000000000", // undefined → created
        "00100000101", // created → running, aborting, null
        "00011010100", // running → paused, ready, waiting, aborting
        "00100000000", // paused → running
        "00000110100", // ready → standby, waiting, aborting
        "00001000000", // standby → ready
        "00000001100", // waiting → pending, aborting
        "00000000110", // pending → aborting, concluded
        "00000000110", // aborting → aborting, concluded
        "00000000001", // concluded → null
        "00000000000"); // null is final

    // Rows: verb (JobVerb order); columns: status. U C R P Y S W D X E N
    private static readonly bool[,] s_verbs = Table(
        "01111111000", // cancel
        "01111100000", // pause
        "01111100000", // resume
        "01111100000", // set-speed
        "00001000000", // complete
        "00000000010", // dismiss
        "00000001000", // finalize
        "01111100000"); // change

    public static bool CanTransition(JobStatus from, JobStatus to) => s_transitions[(int)from, (int)to];

    public static bool Accepts(JobStatus status, JobVerb verb) => s_verbs[(int)verb, (int)status];

    /// <summary>The QAPI spelling ("created", "set-speed").</summary>
    public static string Name(JobStatus status) => status.ToString().ToLowerInvariant();

    public static string Name(JobVerb verb) => verb == JobVerb.SetSpeed ? "set-speed" : verb.ToString().ToLowerInvariant();

    private static bool[,] Table(params string[] rows)
    {
        var t = new bool[rows.Length, Count];
        for (int r = 0; r < rows.Length; r++)
        {
            for (int c = 0; c < Count; c++)
            {
                t[r, c] = rows[r][c] == '1';
            }
        }
        return t;
    }
}
