#if canImport(Glibc)
import Glibc
#endif

/// One line of nginx's `gatewarden` log format (deploy/nginx/gatewarden.conf), read straight from its
/// bytes: the tag `gw1` and eight fields, one space apart.
///
///     gw1 1796019740.602 192.0.2.10 1887 1 . TLSv1.3 200 0.004
///
///     let line = try NginxLogLine(parsing: bytes)   // throws .otherFormat, .malformed
///     line.session               // .new
///     line.isFirstRequest        // true: this line stands for its connection
///
/// Anything else is refused with a reason, never guessed at: a line of another format (or a later
/// version of this one), and a `gw1` line whose fields are not all of their kind (a field more or less,
/// a number too long, an address that is none).
public struct NginxLogLine: Sendable, Equatable {
    /// `$msec`: when nginx wrote the line, in milliseconds since the Unix epoch.
    public var timeMilliseconds: Int64
    /// `$remote_addr`.
    public var address: ClientAddress
    /// `$connection`: the connection's serial number (starts again at 1 when nginx restarts).
    public var connection: UInt64
    /// `$connection_requests`: 1 for the first request of a connection.
    public var connectionRequests: UInt64
    /// `$ssl_session_reused`, checked against `$ssl_protocol`.
    public var session: Session
    /// `$status`.
    public var status: UInt16
    /// `$request_time` in milliseconds.
    public var requestTimeMilliseconds: Int64

    /// What the connection's TLS handshake was.
    public enum Session: Sendable, Equatable {
        /// A full handshake (`.`).
        case new
        /// A resumed session (`r`).
        case resumed
        /// Plain HTTP (`-` in both TLS fields): no evidence either way.
        case notTLS
    }

    /// Why a line is not read.
    public enum Rejection: Error, Sendable, Equatable {
        /// It does not start with `gw1 `: another format, or another version of this one.
        case otherFormat
        /// It starts with `gw1 ` but a field is missing, extra, or not of its kind.
        case malformed
    }

    /// Whether this line is its connection's first request, the one that stands for the connection
    /// (keep-alive requests and HTTP/2 streams repeat the connection's handshake).
    public var isFirstRequest: Bool { connectionRequests == 1 }

    public init(timeMilliseconds: Int64, address: ClientAddress, connection: UInt64, connectionRequests: UInt64,
                session: Session, status: UInt16, requestTimeMilliseconds: Int64) {
        self.timeMilliseconds = timeMilliseconds
        self.address = address
        self.connection = connection
        self.connectionRequests = connectionRequests
        self.session = session
        self.status = status
        self.requestTimeMilliseconds = requestTimeMilliseconds
    }

    /// Reads `line`, without its newline.
    public init(parsing line: UnsafeRawBufferPointer) throws(Rejection) {
        var fields = FieldReader(line)
        guard fields.consumeTag() else { throw .otherFormat }
        guard let time = fields.next().flatMap(Self.milliseconds),
              let address = fields.next().flatMap(ClientAddress.init(text:)),
              let connection = fields.next().flatMap(Self.wholeNumber), connection > 0,
              let requests = fields.next().flatMap(Self.wholeNumber), requests > 0,
              let reused = fields.next(), reused.count == 1, let reusedByte = reused.first,
              let tlsProtocol = fields.next(), !tlsProtocol.isEmpty,
              let status = fields.next().flatMap(Self.wholeNumber), status.isStatus,
              let requestTime = fields.next().flatMap(Self.milliseconds),
              fields.isAtEnd
        else { throw .malformed }
        let isTLS = !(tlsProtocol.count == 1 && tlsProtocol.first == UInt8(ascii: "-"))
        switch (reusedByte, isTLS) {
        case (UInt8(ascii: "r"), true): session = .resumed
        case (UInt8(ascii: "."), true): session = .new
        case (UInt8(ascii: "-"), false): session = .notTLS
        default: throw .malformed
        }
        guard !isTLS || tlsProtocol.allSatisfy(Self.isProtocolByte) else { throw .malformed }
        timeMilliseconds = time
        self.address = address
        self.connection = connection
        connectionRequests = requests
        self.status = UInt16(status)
        requestTimeMilliseconds = requestTime
    }

    /// Convenience for tests and tools: the line as text.
    public init(_ text: String) throws(Rejection) {
        var text = text
        let result: Result<NginxLogLine, Rejection> = text.withUTF8 { bytes in
            do throws(Rejection) {
                return .success(try NginxLogLine(parsing: UnsafeRawBufferPointer(bytes)))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    // MARK: Fields

    private static func isProtocolByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "."): return true
        default: return false
        }
    }

    /// Decimal digits only, at most 18 of them (no overflow, no sign).
    static func wholeNumber(_ field: UnsafeRawBufferPointer.SubSequence) -> UInt64? {
        guard !field.isEmpty, field.count <= 18 else { return nil }
        var value: UInt64 = 0
        for byte in field {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value &* 10 &+ UInt64(digit)
        }
        return value
    }

    /// `SECONDS.mmm`, as nginx writes `$msec` and `$request_time`.
    static func milliseconds(_ field: UnsafeRawBufferPointer.SubSequence) -> Int64? {
        guard field.count >= 5, field[field.endIndex - 4] == UInt8(ascii: "."),
              let seconds = wholeNumber(field[field.startIndex..<(field.endIndex - 4)]), seconds < 1 << 40,
              let fraction = wholeNumber(field[(field.endIndex - 3)...]) else { return nil }
        return Int64(seconds) * 1000 + Int64(fraction)
    }
}

private extension UInt64 {
    var isStatus: Bool { (100...999).contains(self) }
}

/// Walks the space-separated fields of one line.
private struct FieldReader {
    private let line: UnsafeRawBufferPointer
    private var position = 0
    /// Set once the field that ends the line has been read.
    private(set) var isAtEnd = false

    init(_ line: UnsafeRawBufferPointer) {
        self.line = line
    }

    /// Consumes `gw1 ` if the line starts with it.
    mutating func consumeTag() -> Bool {
        guard line.count >= 4, line[0] == UInt8(ascii: "g"), line[1] == UInt8(ascii: "w"), line[2] == UInt8(ascii: "1"),
              line[3] == UInt8(ascii: " ") else { return false }
        position = 4
        return true
    }

    /// The next field, up to the next space or the end of the line; nil once the line is read. Two
    /// spaces in a row give an empty field, and a trailing space leaves the reader short of its end:
    /// no reader accepts either.
    mutating func next() -> UnsafeRawBufferPointer.SubSequence? {
        guard !isAtEnd else { return nil }
        var end = position
        while end < line.count && line[end] != UInt8(ascii: " ") { end += 1 }
        let field = line[position..<end]
        if end == line.count { isAtEnd = true } else { position = end + 1 }
        return field
    }
}
