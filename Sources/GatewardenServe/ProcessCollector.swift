import Foundation

/// The standard `process_*` metrics of the exporter itself, from /proc/self.
public struct ProcessCollector: Collector {
    public let name = "process"

    public init() {}

    public func collect() throws -> [MetricFamily] {
        var cpu = MetricFamily(name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", type: .counter)
        var resident = MetricFamily(name: "process_resident_memory_bytes", help: "Resident memory size in bytes.", type: .gauge)
        var virtual = MetricFamily(name: "process_virtual_memory_bytes", help: "Virtual memory size in bytes.", type: .gauge)
        var openFDs = MetricFamily(name: "process_open_fds", help: "Number of open file descriptors.", type: .gauge)
        var maxFDs = MetricFamily(name: "process_max_fds", help: "Maximum number of open file descriptors.", type: .gauge)
        var start = MetricFamily(name: "process_start_time_seconds",
                                 help: "Start time of the process since unix epoch in seconds.", type: .gauge)

        let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        // Fields after the command name, which is in parentheses and may contain spaces.
        guard let close = stat.lastIndex(of: ")") else { throw ProcessStatError() }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        func field(_ number: Int) -> Double { Double(fields[number - 3]) ?? 0 }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        cpu.add([:], (field(14) + field(15)) / ticks)
        virtual.add([:], field(23))
        resident.add([:], field(24) * pageSize)
        start.add([:], Self.bootTime + field(22) / ticks)

        openFDs.add([:], Double((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0))
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        maxFDs.add([:], Double(limit.rlim_cur))
        return [cpu, resident, virtual, openFDs, maxFDs, start]
    }

    struct ProcessStatError: Error {}

    /// Seconds since the epoch at boot (`btime` in /proc/stat).
    private static let bootTime: Double = {
        let stat = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)) ?? ""
        let line = stat.split(separator: "\n").first { $0.hasPrefix("btime ") }
        return line.flatMap { Double($0.dropFirst(6)) } ?? 0
    }()
}
