using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Net.Qmp;

/// <summary>The network QMP commands, one line each.</summary>
public static class NetQmpCommands
{
    public static void Register(QmpCommandRegistry r, TypeRegistry types, NetClients net)
    {
        NetQmpJsonContext j = NetQmpJsonContext.Default;
        r.Register("netdev_add", j.NetdevAddArgs, j.QmpEmpty, (a, _) => Done(() => net.Add(types, a.Type, a.Id, a.Properties ?? [])));
        r.Register("netdev_del", j.NetdevDelArgs, j.QmpEmpty, (a, _) => Done(() => net.Delete(a.Id)));
    }

    private static QmpEmpty Done(Action action)
    {
        action();
        return QmpEmpty.Instance;
    }
}
