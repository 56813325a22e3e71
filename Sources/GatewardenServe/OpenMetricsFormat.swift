/// Writes metric families in OpenMetrics 1.0.0.
///
/// Differences from text 0.0.4 that matter here: a counter family is named without `_total`
/// (its samples keep it), `info` is a type of its own (family `x`, sample `x_info`), and the
/// exposition ends with `# EOF`.
///
///     OpenMetricsFormat.render([packets])
///     // # TYPE gatewarden_xdp_packets counter
///     // # HELP gatewarden_xdp_packets Packets seen by the XDP program.
///     // gatewarden_xdp_packets_total{action="pass"} 12
///     // # EOF
public enum OpenMetricsFormat {
    public static let contentType = "application/openmetrics-text; version=1.0.0; charset=utf-8"

    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        out.reserveCapacity(families.count * 256)
        for family in families {
            let familyName: String
            switch family.type {
            case .counter: familyName = family.name.hasSuffix("_total") ? String(family.name.dropLast(6)) : family.name
            case .info: familyName = family.name.hasSuffix("_info") ? String(family.name.dropLast(5)) : family.name
            case .gauge, .unknown: familyName = family.name
            }
            out += "# TYPE \(familyName) \(family.type.rawValue)\n"
            out += "# HELP \(familyName) \(escapeHelp(family.help))\n"
            TextFormat.writeSamples(of: family, to: &out)
        }
        out += "# EOF\n"
        return out
    }

    /// OpenMetrics escapes backslash, double quote and line feed in help text too.
    static func escapeHelp(_ help: String) -> String {
        TextFormat.escapeLabelValue(help)
    }
}
