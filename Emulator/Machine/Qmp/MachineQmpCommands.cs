using System.Text.Json;
using Colo.Core.Loop;
using Colo.Core.Objects;
using Colo.Core.Qmp;

namespace Colo.Machine.Qmp;

/// <summary>The machine-level QMP commands: run state, identity, and the object tree.</summary>
public static class MachineQmpCommands
{
    public static void Register(QmpCommandRegistry r, VirtualMachine vm)
    {
        MachineQmpJsonContext j = MachineQmpJsonContext.Default;
        r.Register("query-status", j.QmpNoArgs, j.StatusInfo, _ => new StatusInfo(vm.State == RunState.Running, false, vm.State.ToQapi()));
        r.Register("query-name", j.QmpNoArgs, j.NameInfo, _ => new NameInfo(vm.Name));
        r.Register("query-version", j.QmpNoArgs, j.VersionInfo, _ => Version());
        r.Register("query-kvm", j.QmpNoArgs, j.KvmInfo, _ => new KvmInfo(vm.Accelerator == "kvm", File.Exists("/dev/kvm")));
        r.Register("stop", j.QmpNoArgs, j.QmpEmpty, _ => Done(vm.Stop));
        r.Register("cont", j.QmpNoArgs, j.QmpEmpty, _ => Done(vm.Cont));
        r.Register("system_reset", j.QmpNoArgs, j.QmpEmpty, _ => Done(() => vm.Reset(false, "host-qmp-system-reset")));
        r.Register("system_powerdown", j.QmpNoArgs, j.QmpEmpty, _ => Done(vm.Powerdown));
        r.Register("system_wakeup", j.QmpNoArgs, j.QmpEmpty, _ => Done(vm.Wakeup));
        r.Register("inject-nmi", j.QmpNoArgs, j.QmpEmpty, _ => Done(vm.InjectNmi));
        r.Register("quit", j.QmpNoArgs, j.QmpEmpty, _ => Done(() => vm.RequestShutdown(false, "host-qmp-quit")));
        r.Register("object-add", j.ObjectAddArgs, j.QmpEmpty, a => Done(() => ObjectAdd(vm, a)));
        r.Register("object-del", j.IdArgs, j.QmpEmpty, a => Done(() => vm.DeleteUserObject(a.Id)));
        r.Register("device_add", j.DeviceAddArgs, j.QmpEmpty, a => Done(() => DeviceAdd(vm, a)));
        r.Register("device_del", j.IdArgs, j.QmpEmpty, a => Done(() => vm.DeleteDevice(a.Id)));
        r.Register("qom-list", j.PathArgs, j.ObjectPropertyInfoArray, a => QomList(vm.Tree.Resolve(a.Path)));
        r.Register("qom-get", j.QomGetArgs, j.JsonElement, a => QomGet(vm.Tree.Resolve(a.Path), a.Property));
        r.Register("qom-set", j.QomSetArgs, j.QmpEmpty, a => Done(() => vm.Tree.Resolve(a.Path).SetProperty(a.Property, a.Value)));
        r.Register("query-iothreads", j.QmpNoArgs, j.IoThreadInfoArray, _ => IoThreads(vm));
        r.Register("query-machines", j.QmpNoArgs, j.MachineInfoArray, _ => Machines());
        r.Register("query-cpus-fast", j.QmpNoArgs, j.CpuInfoFastArray, _ => CpusFast(vm));
        r.Register("qom-list-types", j.QomListTypesArgs, j.QomTypeInfoArray, a => ListTypes(vm.Types, a));
        r.Register("device-list-properties", j.DeviceListPropertiesArgs, j.ObjectPropertyInfoArray, a => DeviceProperties(vm.Types, a.TypeName));
    }

    private static MachineInfo[] Machines()
    {
        var list = new List<MachineInfo>();
        foreach (MachineTypeInfo m in MachineTypes.All)
        {
            list.Add(new MachineInfo(m.Name, m.Alias, m.IsDefault ? true : null, m.CpuMax, m.HotpluggableCpus, NumaMemSupported: false,
                Deprecated: false, m.DefaultCpuType, m.DefaultRamId));
        }
        return [.. list];
    }

    /// <summary>The pc machine's default topology puts every CPU in socket 0 as its own core (QEMU 7.2 prefers cores).</summary>
    private static CpuInfoFast[] CpusFast(VirtualMachine vm)
    {
        var list = new List<CpuInfoFast>();
        foreach ((int index, string path, int threadId) in vm.DescribeCpus())
        {
            list.Add(new CpuInfoFast(index, path, threadId, new CpuInstanceProperties(null, 0, null, null, index, 0), "x86_64"));
        }
        return [.. list];
    }

    /// <summary>
    /// qom-list-types over the device registry: the types implementing <c>implements</c> (itself included), abstract
    /// ones only when asked. Colo's QOM knows device types; its other objects are not QOM classes.
    /// </summary>
    private static QomTypeInfo[] ListTypes(TypeRegistry types, QomListTypesArgs args)
    {
        var list = new List<QomTypeInfo>();
        foreach (ObjectTypeInfo t in types.TypesOf(ObjectCategory.Device))
        {
            if ((t.Abstract && args.Abstract != true) || (args.Implements is string i && !types.Implements(t, i)))
            {
                continue;
            }
            list.Add(new QomTypeInfo(t.Name, t.Abstract ? true : null, t.Parent));
        }
        return [.. list];
    }

    /// <summary>device-list-properties: a concrete device type's qdev properties with their defaults, QEMU's errors otherwise.</summary>
    private static ObjectPropertyInfo[] DeviceProperties(TypeRegistry types, string typeName)
    {
        ObjectTypeInfo? type = types.Find(ObjectCategory.Device, typeName);
        if (type is null)
        {
            bool other = types.Find(ObjectCategory.Object, typeName) is not null;
            throw other
                ? new QmpException("Parameter 'typename' expects a non-abstract device type")
                : new QmpException($"Device '{typeName}' not found", QmpErrorClass.DeviceNotFound);
        }
        if (type.Abstract)
        {
            throw new QmpException("Parameter 'typename' expects a non-abstract device type");
        }
        var list = new List<ObjectPropertyInfo>();
        foreach (PropertyDescriptor p in type.Properties)
        {
            if (!p.Hidden)
            {
                list.Add(new ObjectPropertyInfo(p.Name, p.QomTypeName, p.Description, DefaultValue(p)));
            }
        }
        return [.. list];
    }

    /// <summary>A property's default as QEMU's JSON value: numbers for integer types, booleans, strings.</summary>
    private static JsonElement? DefaultValue(PropertyDescriptor p)
    {
        if (p.Default is not string d)
        {
            return null;
        }
        bool numeric = p.Kind is PropertyKind.Int or PropertyKind.UInt or PropertyKind.Size
            || (p.TypeName is string t && (t.StartsWith("int", StringComparison.Ordinal) || t.StartsWith("uint", StringComparison.Ordinal)));
        string json = p.Kind == PropertyKind.Bool ? (d is "true" or "on" ? "true" : "false")
            : numeric ? d
            : JsonSerializer.Serialize(d, MachineQmpJsonContext.Default.String);
        using JsonDocument doc = JsonDocument.Parse(json);
        return doc.RootElement.Clone();
    }

    public static VersionInfo Version() =>
        new(new VersionTriple(VirtualMachine.QemuMajor, VirtualMachine.QemuMinor, VirtualMachine.QemuMicro), VirtualMachine.Package);

    private static QmpEmpty Done(Action action)
    {
        action();
        return QmpEmpty.Instance;
    }

    /// <summary>
    /// QEMU 7.2 takes the type's properties flat. QEMU's COLO document still writes them inside
    /// <c>props</c> (the pre-6.0 form, which 7.2 refuses); Colo accepts both so the document works verbatim.
    /// </summary>
    private static void DeviceAdd(VirtualMachine vm, DeviceAddArgs args)
    {
        var members = new List<KeyValuePair<string, JsonElement>>();
        if (args.Bus is not null)
        {
            members.Add(KeyValuePair.Create("bus", JsonSerializer.SerializeToElement(args.Bus, MachineQmpJsonContext.Default.String)));
        }
        members.AddRange(args.Properties ?? []);
        vm.AddDevice(args.Driver, args.Id, members);
    }

    private static void ObjectAdd(VirtualMachine vm, ObjectAddArgs args)
    {
        TypeRegistry.CheckId(args.Id);
        ObjectTypeInfo type = vm.Types.Get(ObjectCategory.Object, args.QomType);
        var members = new List<KeyValuePair<string, JsonElement>>();
        foreach ((string name, JsonElement value) in args.Properties ?? [])
        {
            if (name == "props" && type.FindProperty("props") is null)
            {
                if (value.ValueKind != JsonValueKind.Object)
                {
                    throw new QmpException("Invalid parameter type for 'props', expected: object");
                }
                members.AddRange(value.EnumerateObject().Select(p => KeyValuePair.Create(p.Name, p.Value)));
            }
            else
            {
                members.Add(KeyValuePair.Create(name, value));
            }
        }
        if (vm.Tree.Objects.FindChild(args.Id) is not null)
        {
            throw new QmpException($"attempt to add duplicate property '{args.Id}' to object (type 'container')");
        }
        QomObject obj = vm.Types.CreateFromJson(ObjectCategory.Object, args.QomType, args.Id, members);
        vm.Tree.Objects.AddChild(args.Id, obj);
    }

    private static ObjectPropertyInfo[] QomList(QomObject obj)
    {
        var list = new List<ObjectPropertyInfo> { new("type", "string") };
        foreach (KeyValuePair<string, QomObject> child in obj.Children)
        {
            list.Add(new(child.Key, $"child<{child.Value.TypeName}>"));
        }
        foreach ((string name, string type) in obj.QomProperties)
        {
            list.Add(new(name, type));
        }
        return [.. list];
    }

    private static JsonElement QomGet(QomObject obj, string property)
    {
        if (obj.FindChild(property) is { } child)
        {
            return JsonDocument.Parse(JsonSerializer.Serialize(child.CanonicalPath, MachineQmpJsonContext.Default.String)).RootElement.Clone();
        }
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            obj.WriteProperty(property, writer);
        }
        using JsonDocument doc = JsonDocument.Parse(buffer.WrittenMemory);
        return doc.RootElement.Clone();
    }

    private static IoThreadInfo[] IoThreads(VirtualMachine vm)
    {
        var list = new List<IoThreadInfo>();
        foreach (KeyValuePair<string, QomObject> child in vm.Tree.Objects.Children)
        {
            if (child.Value is IoThread t)
            {
                list.Add(new(child.Key, t.ThreadId, t.Values.GetInt("poll-max-ns"), t.Values.GetInt("poll-grow"), t.Values.GetInt("poll-shrink"), t.Values.GetInt("aio-max-batch")));
            }
        }
        return [.. list];
    }
}
