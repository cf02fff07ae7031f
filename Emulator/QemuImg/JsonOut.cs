using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Colo.QemuImg;

/// <summary>QEMU's pretty JSON: four-space indentation, "key": value.</summary>
internal static class JsonOut
{
    public static string Write(Action<Utf8JsonWriter> body)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions
        {
            Indented = true,
            IndentSize = 4,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            body(w);
        }

        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
