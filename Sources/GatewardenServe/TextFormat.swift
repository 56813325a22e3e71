/// Writes metric families in the Prometheus text exposition format 0.0.4.
///
///     let body = TextFormat.render(families)
///     // # HELP gatewarden_up Whether the collector's last scrape succeeded.
///     // # TYPE gatewarden_up gauge
///     // gatewarden_up{collector="xdp"} 1
public enum TextFormat {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        out.reserveCapacity(families.count * 256)
        for family in families {
            out += "# HELP \(family.name) \(escapeHelp(family.help))\n"
            // 0.0.4 has no info type: an info metric is a gauge of 1 with labels.
            let type = family.type == .info ? "gauge" : family.type.rawValue
            out += "# TYPE \(family.name) \(type)\n"
            writeSamples(of: family, to: &out)
        }
        return out
    }

    /// `name{label="value",...} value` lines, the same in both formats.
    static func writeSamples(of family: MetricFamily, to out: inout String) {
        for sample in family.samples {
            out += family.name
            if !sample.labels.isEmpty {
                out += "{"
                out += sample.labels.map { "\($0.name)=\"\(escapeLabelValue($0.value))\"" }.joined(separator: ",")
                out += "}"
            }
            out += " " + formatValue(sample.value) + "\n"
        }
    }

    /// Label values escape backslash, double quote and line feed.
    public static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// Help text escapes backslash and line feed only.
    public static func escapeHelp(_ help: String) -> String {
        help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Integers print without a fraction (counters are integral); specials as the format spells them.
    public static func formatValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
