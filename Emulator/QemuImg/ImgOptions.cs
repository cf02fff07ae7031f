namespace Colo.QemuImg;

/// <summary>QEMU's "-o key=value,key=value" lists (",," escapes a comma); later keys win.</summary>
internal static class ImgOptions
{
    public static List<KeyValuePair<string, string>> Parse(IEnumerable<string> lists)
    {
        var result = new List<KeyValuePair<string, string>>();
        foreach (string list in lists)
        {
            var cur = new System.Text.StringBuilder();
            var parts = new List<string>();
            for (int i = 0; i < list.Length; i++)
            {
                if (list[i] == ',')
                {
                    if (i + 1 < list.Length && list[i + 1] == ',')
                    {
                        cur.Append(',');
                        i++;
                        continue;
                    }

                    parts.Add(cur.ToString());
                    cur.Clear();
                    continue;
                }

                cur.Append(list[i]);
            }

            parts.Add(cur.ToString());
            foreach (string p in parts)
            {
                if (p.Length == 0)
                {
                    continue;
                }

                int eq = p.IndexOf('=', StringComparison.Ordinal);
                string key = eq < 0 ? p : p[..eq];
                string value = eq < 0 ? "on" : p[(eq + 1)..];
                result.RemoveAll(kv => kv.Key == key);
                result.Add(new KeyValuePair<string, string>(key, value));
            }
        }

        return result;
    }

    public static bool ParseBool(string prefix, string key, string value) => value switch
    {
        "on" => true,
        "off" => false,
        _ => throw new QemuImgException($"{prefix}Parameter '{key}' expects 'on' or 'off'"),
    };
}
