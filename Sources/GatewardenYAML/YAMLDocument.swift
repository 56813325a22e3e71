import CYaml
import Yams

/// Composes a YAML document that came from a file or the network, refusing first what would make
/// composing itself hang or run deep: a mapping key that is not a scalar (Yams hashes keys to find
/// duplicates, and an alias to a nested structure used as a key hashes every node it expands to: a
/// billion for a "billion laughs" document, found hanging by the fuzz corpus), and nesting deeper
/// than `maximumDepth` (Yams composes recursively, a few stack frames a level, on whatever thread
/// parses). Gatewarden's files need neither: their keys are words, their depth a few levels.
///
///     do {
///         let root = try YAMLDocument.compose(text)   // nil for an empty document
///     } catch let problem as YAMLDocument.Problem {
///         print("policy.yaml:\(problem.line):\(problem.column): \(problem.key): \(problem.message)")
///     }
public enum YAMLDocument {
    public static let maximumDepth = 64

    /// What is wrong and where (line and column from 1); `key` is the repeated key for a duplicate, else "(yaml)".
    public struct Problem: Error, Sendable, Equatable {
        public let line: Int
        public let column: Int
        public let key: String
        public let message: String
    }

    public static func compose(_ text: String) throws(Problem) -> Node? {
        if let hazard = hazard(in: text) { throw hazard }
        do {
            return try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw problem(error)
        } catch {
            throw Problem(line: 1, column: 1, key: "(yaml)", message: "\(error)")
        }
    }

    /// The first structure `compose` must not be given, found in libyaml's event stream (which
    /// it parses without recursing). Syntax errors are left to Yams, which reports them.
    static func hazard(in text: String) -> Problem? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer -> Problem? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            // One entry per open collection: whether it is a mapping whose next node is a key.
            var open: [(isMapping: Bool, expectsKey: Bool)] = []
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return nil }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1, column = Int(event.start_mark.column) + 1
                let isNode = [YAML_SCALAR_EVENT, YAML_ALIAS_EVENT, YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT]
                    .contains(event.type)
                if isNode, let parent = open.last, parent.isMapping {
                    if parent.expectsKey && event.type != YAML_SCALAR_EVENT {
                        return Problem(line: line, column: column, key: "(yaml)",
                                       message: "a key must be a plain word, not a list, a mapping or an alias")
                    }
                    open[open.count - 1].expectsKey.toggle()
                }
                switch event.type {
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    open.append((event.type == YAML_MAPPING_START_EVENT, true))
                    if open.count > maximumDepth {
                        return Problem(line: line, column: column, key: "(yaml)",
                                       message: "nested deeper than \(maximumDepth) levels")
                    }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    _ = open.popLast()
                case YAML_STREAM_END_EVENT:
                    return nil
                default:
                    break
                }
            }
        }
    }

    /// A mapping key as a problem names it: `""` for an empty key (a lone `?`, say), `?` for one that is not a scalar.
    public static func keyName(_ node: Node) -> String {
        guard let key = node.string else { return "?" }
        return key.isEmpty ? "\"\"" : key
    }

    private static func problem(_ error: YamlError) -> Problem {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return Problem(line: max(mark.line, 1), column: max(mark.column, 1), key: "(yaml)", message: problem)
        case .reader(let problem, let offset, _, let yaml):
            // A character YAML does not allow (a control character, say): placed by its byte offset.
            let before = yaml.utf8.prefix(offset ?? 0)
            let lines = before.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            let column = lines.last.map { String(decoding: $0, as: UTF8.self).count } ?? 0
            return Problem(line: lines.count, column: column + 1, key: "(yaml)", message: problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            // The mark is the key's first appearance; the message says which key repeats.
            return Problem(line: max(context.mark.line, 1), column: max(context.mark.column, 1),
                           key: duplicates.first.map { $0.isEmpty ? "\"\"" : $0 } ?? "(yaml)", message: "appears more than once in the same mapping")
        default:
            return Problem(line: 1, column: 1, key: "(yaml)", message: "\(error)")
        }
    }
}
