using System.Globalization;
using System.Text;
using System.Text.Json;
using Colo.Core.Chardev;
using Colo.Core.Loop;
using Colo.Core.Qmp;
using Colo.Monitor.Json;

namespace Colo.Monitor.Qmp;

/// <summary>
/// One QMP monitor on a chardev (<c>-qmp</c>, <c>-mon mode=control</c>): greeting on connect,
/// capabilities negotiation, request validation and replies byte-compatible with QEMU 7.2, and events
/// from the bus once negotiated. Each instance has its own session state; all work happens on the event
/// loop the chardev delivers to, so commands run there too.
/// </summary>
public sealed class QmpMonitor : ICharFrontend, IDisposable
{
    private readonly Chardev _chardev;
    private readonly IEventLoop _loop;
    private readonly QmpCommandRegistry _commands;
    private readonly QmpVersionInfo _version;
    private readonly QmpJsonStreamer _streamer;
    private readonly QmpContext _context;
    private readonly IDisposable? _eventSubscription;
    private readonly StringBuilder _line = new();
    private bool _connected;

    /// <summary>Creates the monitor; call <see cref="Start"/> to attach it to <paramref name="chardev"/>.</summary>
    /// <param name="chardev">Where the client is; the monitor becomes its frontend.</param>
    /// <param name="loop">The loop that owns the monitor (main loop); commands run on it.</param>
    /// <param name="commands">The frozen command table (including <see cref="MonitorQmpCommands"/>).</param>
    /// <param name="events">Events to forward after negotiation; null for none.</param>
    /// <param name="version">Version and package string reported in the greeting.</param>
    public QmpMonitor(Chardev chardev, IEventLoop loop, QmpCommandRegistry commands, QmpEventBus? events, QmpVersionInfo version)
    {
        _chardev = chardev;
        _loop = loop;
        _commands = commands;
        _version = version;
        _streamer = new QmpJsonStreamer(HandleMessage);
        _context = new QmpContext(this);
        // An event raised while a command runs on this loop goes out at once, before the command's reply, as in QEMU.
        _eventSubscription = events?.Subscribe(message =>
        {
            if (_loop.IsLoopThread)
            {
                SendEvent(message);
            }
            else
            {
                _loop.Post(() => SendEvent(message));
            }
        });
    }

    /// <summary>True until the client completed <c>qmp_capabilities</c>.</summary>
    public bool IsNegotiating { get; private set; } = true;

    /// <summary>True when the client enabled the <c>oob</c> capability.</summary>
    public bool OobEnabled { get; private set; }

    /// <summary>Attaches to the chardev; a connected backend then triggers the greeting.</summary>
    public void Start() => _chardev.Attach(this, _loop);

    /// <inheritdoc/>
    public void Receive(ReadOnlySpan<byte> data) => _streamer.Feed(data);

    /// <inheritdoc/>
    public void OnEvent(CharEvent charEvent)
    {
        if (charEvent is not (CharEvent.Opened or CharEvent.Closed))
        {
            return; // mux focus and break events do not touch a QMP session
        }
        // Every connection starts a fresh session; a half-received message is dropped, as QEMU does.
        _streamer.Reset();
        IsNegotiating = true;
        OobEnabled = false;
        _connected = charEvent == CharEvent.Opened;
        if (_connected)
        {
            SendGreeting();
        }
    }

    /// <summary>Detaches from the chardev and stops forwarding events.</summary>
    public void Dispose()
    {
        _eventSubscription?.Dispose();
        _chardev.Detach(this);
    }

    /// <summary>Called by <c>qmp_capabilities</c> (in negotiation mode) to enter command mode.</summary>
    internal void CompleteNegotiation(bool enableOob)
    {
        IsNegotiating = false;
        OobEnabled = enableOob;
    }

    private void SendGreeting()
    {
        StringBuilder sb = _line.Clear();
        sb.Append("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": ").Append(_version.Micro.ToString(CultureInfo.InvariantCulture))
            .Append(", \"minor\": ").Append(_version.Minor.ToString(CultureInfo.InvariantCulture))
            .Append(", \"major\": ").Append(_version.Major.ToString(CultureInfo.InvariantCulture))
            .Append("}, \"package\": ");
        QmpJsonFormatter.WriteString(sb, _version.Package);
        sb.Append("}, \"capabilities\": [\"oob\"]}}");
        Flush();
    }

    private void SendEvent(QmpEventMessage message)
    {
        if (!_connected || IsNegotiating)
        {
            return;
        }
        StringBuilder sb = _line.Clear();
        sb.Append("{\"timestamp\": {\"seconds\": ").Append(message.Seconds.ToString(CultureInfo.InvariantCulture))
            .Append(", \"microseconds\": ").Append(message.Microseconds.ToString(CultureInfo.InvariantCulture))
            .Append("}, \"event\": ");
        QmpJsonFormatter.WriteString(sb, message.Name);
        if (message.DataJson is not null)
        {
            sb.Append(", \"data\": ");
            QmpJsonFormatter.WriteJson(sb, message.DataJson);
        }
        sb.Append('}');
        Flush();
    }

    /// <summary>Writes the line built in <see cref="_line"/>; QEMU's monitor turns each "\n" into "\r\n".</summary>
    private void Flush()
    {
        _line.Append("\r\n");
        byte[] bytes = Encoding.ASCII.GetBytes(_line.ToString());
        _line.Clear();
        _chardev.Write(bytes);
    }

    private void HandleMessage(QmpJsonMessage message)
    {
        JsonElement? id = null;
        try
        {
            if (message.Error is not null)
            {
                SendError(null, QmpErrorClass.GenericError, message.Error);
                return;
            }
            JsonElement request = message.Value!.Value;
            if (request.ValueKind != JsonValueKind.Object)
            {
                SendError(null, QmpErrorClass.GenericError, "QMP input must be a JSON object");
                return;
            }
            if (request.TryGetProperty("id", out JsonElement idValue))
            {
                id = idValue;
            }
            string result = Dispatch(request);
            StringBuilder sb = _line.Clear();
            sb.Append("{\"return\": ");
            QmpJsonFormatter.WriteJson(sb, result);
            if (id is { } echoed)
            {
                sb.Append(", \"id\": ");
                QmpJsonFormatter.Write(sb, echoed);
            }
            sb.Append('}');
            Flush();
        }
        catch (QmpException e)
        {
            SendError(id, e.ErrorClass, e.Message);
        }
        catch (Exception e)
        {
            // A handler bug must not take the monitor down: report it like any failed command.
            SendError(id, QmpErrorClass.GenericError, e.Message);
        }
    }

    /// <summary>Validates the request as QEMU's qmp_dispatch does and runs the command; returns its JSON.</summary>
    private string Dispatch(JsonElement request)
    {
        string? execKey = null;
        string? command = null;
        JsonElement? arguments = null;
        // QEMU checks members in its hash-table order, which decides which error a bad request gets.
        foreach (JsonProperty member in QmpJsonFormatter.MembersInQemuOrder(request))
        {
            string name = member.Name;
            if (name == "execute" || (name == "exec-oob" && OobEnabled))
            {
                if (member.Value.ValueKind != JsonValueKind.String)
                {
                    throw new QmpException($"QMP input member '{name}' must be a string");
                }
                if (execKey is not null)
                {
                    throw new QmpException($"QMP input member '{name}' clashes with '{execKey}'");
                }
                execKey = name;
                command = member.Value.GetString();
            }
            else if (name == "arguments")
            {
                if (member.Value.ValueKind != JsonValueKind.Object)
                {
                    throw new QmpException("QMP input member 'arguments' must be an object");
                }
                arguments = member.Value;
            }
            else if (name != "id")
            {
                throw new QmpException($"QMP input member '{name}' is unexpected");
            }
        }
        if (execKey is null || command is null)
        {
            throw new QmpException("QMP input lacks member 'execute'");
        }

        if (!_commands.TryGet(command, out QmpCommand? cmd) || (IsNegotiating && !cmd.AllowedBeforeNegotiation))
        {
            throw new QmpException(
                IsNegotiating ? "Expecting capabilities negotiation with 'qmp_capabilities'" : $"The command {command} has not been found",
                QmpErrorClass.CommandNotFound);
        }
        if (execKey == "exec-oob")
        {
            // No Colo command is marked out-of-band capable yet (QEMU: migrate-recover, migrate-pause).
            throw new QmpException($"The command {command} does not support OOB");
        }
        return cmd.Invoke(arguments, _context);
    }

    private void SendError(JsonElement? id, QmpErrorClass errorClass, string description)
    {
        StringBuilder sb = _line.Clear();
        sb.Append('{');
        if (id is { } echoed)
        {
            sb.Append("\"id\": ");
            QmpJsonFormatter.Write(sb, echoed);
            sb.Append(", ");
        }
        sb.Append("\"error\": {\"class\": \"").Append(errorClass.ToString()).Append("\", \"desc\": ");
        QmpJsonFormatter.WriteString(sb, description);
        sb.Append("}}");
        Flush();
    }
}
