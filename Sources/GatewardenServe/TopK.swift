/// Keeps the `k` largest values seen, for bounded top-offender series whatever a map holds.
///
///     var top = TopK<String>(k: 2)
///     top.offer("a", 5); top.offer("b", 9); top.offer("c", 7)
///     top.sorted   // [("b", 9), ("c", 7)]
public struct TopK<Item> {
    public let k: Int
    private var items: [(item: Item, value: UInt64)] = []
    private var minimumIndex = 0

    public init(k: Int) {
        self.k = max(k, 0)
        items.reserveCapacity(self.k)
    }

    public mutating func offer(_ item: Item, _ value: UInt64) {
        guard k > 0 else { return }
        if items.count < k {
            items.append((item, value))
            if items.count == k { minimumIndex = indexOfMinimum() }
        } else if value > items[minimumIndex].value {
            items[minimumIndex] = (item, value)
            minimumIndex = indexOfMinimum()
        }
    }

    private func indexOfMinimum() -> Int {
        items.indices.min { items[$0].value < items[$1].value } ?? 0
    }

    /// Largest first.
    public var sorted: [(item: Item, value: UInt64)] {
        items.sorted { $0.value > $1.value }
    }
}
