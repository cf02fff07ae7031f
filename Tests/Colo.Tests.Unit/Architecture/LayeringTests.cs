using System.Reflection;

namespace Colo.Tests.Unit.Architecture;

/// <summary>Dependencies point one way (ARCHITECTURE.md 2.1): each assembly may reference only the layers listed here.</summary>
[TestFixture]
public sealed class LayeringTests
{
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["Colo.Core"] = [],
        ["Colo.Cpu"] = ["Colo.Core"],
        ["Colo.Block"] = ["Colo.Core"],
        ["Colo.Net"] = ["Colo.Core"],
        ["Colo.Monitor"] = ["Colo.Core"],
        ["Colo.Devices"] = ["Colo.Core", "Colo.Block", "Colo.Net"],
        ["Colo.Migration"] = ["Colo.Core", "Colo.Block", "Colo.Net"],
        ["Colo.Machine"] = ["Colo.Core", "Colo.Cpu", "Colo.Devices", "Colo.Block", "Colo.Net", "Colo.Migration", "Colo.Monitor"],
    };

    private static IEnumerable<string> ColoAssemblies() => Allowed.Keys;

    [TestCaseSource(nameof(ColoAssemblies))]
    public void Assembly_ReferencesOnlyLowerLayers(string name)
    {
        Assembly assembly = Assembly.Load(name);
        string[] coloReferences = assembly.GetReferencedAssemblies()
            .Select(a => a.Name!)
            .Where(n => n.StartsWith("Colo.", StringComparison.Ordinal))
            .ToArray();
        Assert.That(coloReferences, Is.SubsetOf(Allowed[name]), $"{name} references a layer above it");
    }
}
