/// The two exposition formats Prometheus speaks, and the choice between them from an Accept header.
///
///     let format = ExpositionFormat.negotiate(accept: "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
///     format == .openMetrics    // true
///     format.contentType        // "application/openmetrics-text; version=1.0.0; charset=utf-8"
public enum ExpositionFormat: Sendable, Equatable {
    /// Prometheus text format 0.0.4.
    case text
    /// OpenMetrics 1.0.0.
    case openMetrics

    public var contentType: String {
        switch self {
        case .text: return TextFormat.contentType
        case .openMetrics: return OpenMetricsFormat.contentType
        }
    }

    public func render(_ families: [MetricFamily]) -> String {
        switch self {
        case .text: return TextFormat.render(families)
        case .openMetrics: return OpenMetricsFormat.render(families)
        }
    }

    /// OpenMetrics when the client accepts it (version 1.0.0 or unversioned) at least as much as
    /// text; otherwise text, which every client reads.
    public static func negotiate(accept: String?) -> ExpositionFormat {
        guard let accept, !accept.isEmpty else { return .text }
        var openMetricsQuality = 0.0
        var textQuality = 0.0
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingSpaces }
            guard let mediaType = parts.first?.lowercased() else { continue }
            var quality = 1.0
            var version: String?
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces }
                guard pair.count == 2 else { continue }
                switch pair[0].lowercased() {
                case "q": quality = Double(pair[1]) ?? 0
                case "version": version = pair[1]
                default: break
                }
            }
            switch mediaType {
            case "application/openmetrics-text" where version == nil || version == "1.0.0":
                openMetricsQuality = max(openMetricsQuality, quality)
            case "text/plain", "text/*", "*/*":
                textQuality = max(textQuality, quality)
            default:
                break
            }
        }
        return openMetricsQuality > 0 && openMetricsQuality >= textQuality ? .openMetrics : .text
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
