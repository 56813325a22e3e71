/// Replaces every `"elem": [ ... ]` array in an nftables JSON listing with its element count.
///
/// A listing of a 65,000-element set is over a megabyte of JSON; building an object per element
/// only to count them cost more than the listing itself. One pass over the bytes, tracking
/// strings and brackets, leaves a small document that `JSONSerialization` reads in microseconds:
///
///     ElementArrayCounter.collapse(#"{"set": {"name": "b", "elem": [1, {"x": [2, 3]}, "a,b"]}}"#)
///     // {"set": {"name": "b", "elem": 3}}
public enum ElementArrayCounter {
    private static let key = Array(#""elem""#.utf8)

    public static func collapse(_ json: String) -> String {
        var bytes = Array(json.utf8)
        return bytes.withUnsafeMutableBufferPointer { input in
            var output: [UInt8] = []
            output.reserveCapacity(min(input.count, 1 << 16))
            var index = 0
            var copiedUpTo = 0
            var inString = false
            while index < input.count {
                let byte = input[index]
                if inString {
                    if byte == UInt8(ascii: "\\") { index += 2; continue }
                    if byte == UInt8(ascii: "\"") { inString = false }
                    index += 1
                    continue
                }
                if byte == UInt8(ascii: "\""), matchesKey(input, at: index),
                   let open = arrayStart(input, after: index + key.count) {
                    let (count, end) = countItems(input, from: open)
                    output.append(contentsOf: input[copiedUpTo..<(index + key.count)])
                    output.append(contentsOf: Array(": \(count)".utf8))
                    copiedUpTo = end
                    index = end
                    continue
                }
                if byte == UInt8(ascii: "\"") { inString = true }
                index += 1
            }
            output.append(contentsOf: input[copiedUpTo..<input.count])
            return String(decoding: output, as: UTF8.self)
        }
    }

    private static func matchesKey(_ input: UnsafeMutableBufferPointer<UInt8>, at index: Int) -> Bool {
        guard index + key.count <= input.count else { return false }
        for offset in 0..<key.count where input[index + offset] != key[offset] { return false }
        return true
    }

    /// The index of the `[` after `: `, if the value is an array.
    private static func arrayStart(_ input: UnsafeMutableBufferPointer<UInt8>, after index: Int) -> Int? {
        var cursor = index
        while cursor < input.count, input[cursor] == UInt8(ascii: " ") || input[cursor] == UInt8(ascii: "\n") { cursor += 1 }
        guard cursor < input.count, input[cursor] == UInt8(ascii: ":") else { return nil }
        cursor += 1
        while cursor < input.count, input[cursor] == UInt8(ascii: " ") || input[cursor] == UInt8(ascii: "\n") { cursor += 1 }
        return cursor < input.count && input[cursor] == UInt8(ascii: "[") ? cursor : nil
    }

    /// Counts the top-level items of the array opening at `open`; returns the count and the index after `]`.
    private static func countItems(_ input: UnsafeMutableBufferPointer<UInt8>, from open: Int) -> (Int, Int) {
        var depth = 0
        var commas = 0
        var sawItem = false
        var inString = false
        var index = open
        while index < input.count {
            let byte = input[index]
            if inString {
                if byte == UInt8(ascii: "\\") { index += 2; continue }
                if byte == UInt8(ascii: "\"") { inString = false }
            } else {
                switch byte {
                case UInt8(ascii: "\""): inString = true; sawItem = true
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    if depth >= 1 { sawItem = true }
                    depth += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    depth -= 1
                    if depth == 0 { return (sawItem ? commas + 1 : 0, index + 1) }
                case UInt8(ascii: ","): if depth == 1 { commas += 1 }
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"): break
                default: sawItem = true
                }
            }
            index += 1
        }
        return (sawItem ? commas + 1 : 0, input.count)
    }
}
