// The enforce loop: violator sources (XDP offenders, nftables escalations, the TLS feed) turned into
// bans in both layers, kept in a store that outlives restarts and reboots.
