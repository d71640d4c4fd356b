//! `tgtadm --help`.

/// The help text, printed on stdout with exit status 0 as tgt does.
pub(crate) fn text() -> String {
    format!(
        "tgtadm {version}: administer a running tgtd (tgt-compatible syntax)\n\
\n\
Usage: tgtadm [OPTION]...\n\
\n\
Targets:\n\
  --lld iscsi --mode target --op new --tid ID --targetname NAME\n\
      create target ID (not 0) named NAME, with its LUN 0 controller\n\
  --lld iscsi --mode target --op delete [--force] --tid ID\n\
      delete target ID; --force even while initiators are logged in\n\
  --lld iscsi --mode target --op show\n\
      show every target, its sessions, LUNs and access rules\n\
  --lld iscsi --mode target --op update --tid ID --name KEY --value VALUE\n\
      set a target key: tgt's iSCSI keys, or ALUA (several gateways over one\n\
      LU): alua_group ID (this gateway's target port group; 0: ALUA off),\n\
      alua_port ID (its relative target port; default the group id),\n\
      alua_state GROUP:STATE[:PORT,...] with STATE active/optimized (ao),\n\
      active/non-optimized (an), standby, unavailable, transitioning or none\n\
  --lld iscsi --mode target --op show --tid ID\n\
      show the keys of target ID\n\
  --lld iscsi --mode target --op bind --tid ID --initiator-address ADDR\n\
  --lld iscsi --mode target --op bind --tid ID --initiator-name NAME\n\
      let initiators at ADDR (ALL, an address, or ADDR/PREFIX) or named NAME in\n\
  --lld iscsi --mode target --op unbind --tid ID --initiator-address ADDR\n\
  --lld iscsi --mode target --op unbind --tid ID --initiator-name NAME\n\
      remove such a rule\n\
\n\
Logical units:\n\
  --lld iscsi --mode logicalunit --op new --tid ID --lun LUN\n\
          --backing-store PATH [--bstype TYPE] [--blocksize BYTES]\n\
      add LUN to target ID over PATH; TYPE is rdwr (default), memory or null\n\
  --lld iscsi --mode logicalunit --op delete --tid ID --lun LUN\n\
      remove LUN (not 0) from target ID\n\
\n\
System:\n\
  --mode system --op show     show daemon state and backing store types\n\
  --mode system --op delete   stop the daemon (only when no target is left)\n\
\n\
Connection to the daemon:\n\
  -C, --control-port N        talk to the daemon on socket.N (default 0)\n\
  --control-socket PATH       talk to the daemon at PATH\n\
      Otherwise $TGTD_CONTROL_SOCKET, then tgt's $TGT_IPC_SOCKET.N, then\n\
      /var/run/tgtd/socket.N (root, or when it exists), else\n\
      $XDG_RUNTIME_DIR/tgtd/socket.N or /tmp/tgtd-UID/socket.N.\n\
\n\
  -h, --help                  show this help\n\
  -V, --version               show the version\n\
\n\
Short options: -L lld, -m mode, -o op, -t tid, -T targetname, -l lun,\n\
-b backing-store, -E bstype, -y blocksize, -I initiator-address,\n\
-Q initiator-name, -C control-port. Exit status: 0 on success, 22 when the\n\
command line or the request is refused, 1 for an unknown mode or operation.\n",
        version = env!("CARGO_PKG_VERSION")
    )
}
