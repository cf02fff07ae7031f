using System.Globalization;

namespace Colo.QemuImg;

/// <summary>QEMU's "-p" progress line: "    (NN.NN/100%)" rewritten in place with '\r'.</summary>
internal sealed class Progress
{
    private readonly bool _enabled;
    private double _last = -1;

    public Progress(bool enabled)
    {
        _enabled = enabled;
        Report(0);
    }

    public void Report(double percent)
    {
        // Print on every whole-percent step or more, as QEMU throttles its updates.
        if (!_enabled || (percent - _last < 1 && percent < 100) || percent == _last)
        {
            return;
        }

        _last = percent;
        Console.Write(string.Create(CultureInfo.InvariantCulture, $"    ({percent:F2}/100%)\r"));
    }

    public void Done()
    {
        if (_enabled)
        {
            Report(100);
            Console.Write("\n");
        }
    }
}
