import Foundation

/// Runs at most one `work` at a time; callers that arrive while it runs wait for it and share
/// its result instead of starting another. Concurrent scrapes therefore cost one kernel listing,
/// and slow listings never pile up behind each other.
public final class SingleFlight<Value: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var running = false
    private var generation = 0
    private var lastValue: Value?

    public init() {}

    public func run(_ work: () -> Value) -> Value {
        condition.lock()
        if running {
            let joined = generation
            while running && generation == joined { condition.wait() }
            let value = lastValue!
            condition.unlock()
            return value
        }
        running = true
        condition.unlock()

        let value = work()

        condition.lock()
        lastValue = value
        running = false
        generation += 1
        condition.broadcast()
        condition.unlock()
        return value
    }
}
