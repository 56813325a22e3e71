import Foundation
import GatewardenKernel
import GatewardenDataPlane

/// Pinned maps whose layout differs from what this build's program needs: an instance loaded by an
/// earlier version (a counter array that grew, a config struct with a new field).
///
/// libbpf refuses to reuse a pinned map whose type, key or value size, capacity or flags differ.
/// A map that holds nothing worth keeping (`XDPMaps.Name.rebuildable`: counters, what `load` writes
/// anyway, caches) is created afresh and pinned under a pending name; once the new program is
/// attached the pending pin is moved over the old one in one step, so a failed load leaves the old
/// instance exactly as it was and readers always find a map. A blocklist of the layout before ban
/// origins is replaced the same way, its live bans carried over (as manual bans) into the new map
/// before the policy's are written. Any other map (buckets, offenders: rate state) refuses the
/// load before anything changes, naming the map.
///
///     let upgrade = try PinnedMapUpgrade(object: object, layout: layout)   // throws on a kept map
///     try upgrade.prepare(object)        // before object.load()
///     ...attach...
///     try upgrade.commit()               // after the new program runs
struct PinnedMapUpgrade {
    /// Pending pins are named `pending-NAME` (bpffs refuses names with a dot).
    static func pendingName(_ name: String) -> String { "pending-" + name }

    let layout: PinLayout
    /// Maps to replace, with the definition pinned now and the one wanted.
    let replacements: [(name: String, pinned: BPFMapDefinition, wanted: BPFMapDefinition)]

    init(object: BPFObject, layout: PinLayout, rebuildable: Set<String> = XDPMaps.Name.rebuildable) throws {
        self.layout = layout
        var replacements: [(String, BPFMapDefinition, BPFMapDefinition)] = []
        for name in object.mapNames {
            guard let pinned = try? BPFMap(pinnedAt: layout.map(name)) else { continue }
            let wanted = try object.mapDefinition(named: name)
            let found = pinned.info.definition
            guard found != wanted else { continue }
            let convertible = name == XDPMaps.Name.blocklist && XDPMaps.isLegacyBlocklist(pinned)
            guard rebuildable.contains(name) || convertible else {
                throw KernelError(operation: "map \(name) pinned at \(layout.map(name)) has another layout "
                    + "(\(found)) than this version needs (\(wanted)); it holds state that a replacement would lose, "
                    + "so nothing was changed. Load the version that pinned it, or `gatewarden unload` first "
                    + "(which removes bans, buckets and counters)")
            }
            replacements.append((name, found, wanted))
        }
        self.replacements = replacements
    }

    var isEmpty: Bool { replacements.isEmpty }

    private func pendingPath(_ name: String) -> String { layout.map(Self.pendingName(name)) }

    /// Points the replaced maps at their pending pins (cleared of any left by an earlier failure),
    /// so `load` creates them afresh instead of refusing the pinned ones. Call after `pinMaps`.
    func prepare(_ object: BPFObject) throws {
        for replacement in replacements {
            try BPFPin.remove(pendingPath(replacement.name))
            try object.setPinPath(pendingPath(replacement.name), ofMap: replacement.name)
        }
    }

    /// Carries over what a replaced map held that still means the same (call after `load`, before
    /// the new maps are written): the list generation of gw_config, and every live ban of a
    /// blocklist of the earlier layout. Counters start again from zero.
    func carryOver(into maps: XDPMaps) throws {
        if replacements.contains(where: { $0.name == XDPMaps.Name.config }) {
            try maps.continueListGeneration(from: BPFMap(pinnedAt: layout.map(XDPMaps.Name.config)))
        }
        if replacements.contains(where: { $0.name == XDPMaps.Name.blocklist }) {
            try maps.carryOverLegacyBans(from: BPFMap(pinnedAt: layout.map(XDPMaps.Name.blocklist)))
        }
    }

    /// Moves each new map's pin over the old one and says on stderr which maps were replaced.
    func commit() throws {
        for replacement in replacements {
            try BPFPin.move(pendingPath(replacement.name), over: layout.map(replacement.name))
        }
        guard !isEmpty else { return }
        let lines = replacements.map { "  \($0.name): \($0.pinned) -> \($0.wanted)" }
        FileHandle.standardError.write(Data(("gatewarden: replaced \(replacements.count) pinned map(s) whose layout "
            + "changed in this version (their counters start again from zero; lists, buckets and bans are kept):\n"
            + lines.joined(separator: "\n") + "\n").utf8))
    }

    /// Removes pending pins after a failed load: the old instance stays as it was.
    func abandon() {
        for replacement in replacements { _ = try? BPFPin.remove(pendingPath(replacement.name)) }
    }

    /// Pending pins that a crash may have left in an instance folder (for `unload`).
    static func leftovers(in layout: PinLayout, mapNames: [String]) -> [String] {
        mapNames.map { layout.map(pendingName($0)) }.filter { FileManager.default.fileExists(atPath: $0) }
    }
}
