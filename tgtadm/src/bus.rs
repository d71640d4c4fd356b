//! `--bus BUS,DEVICE`: the SCSI host number of a device, found in sysfs as tgt's
//! `bus_to_host` finds it (`/sys/bus/BUS/devices/DEVICE/hostN`).

use std::path::Path;

/// The host number of `spec` (`BUS,DEVICE`) under `sys_bus` (normally `/sys/bus`), or
/// the message tgtadm prints (exit 22). Without a comma there is nothing to look up:
/// tgt then sends a garbage host number; we refuse it with the same message.
pub fn bus_to_host(sys_bus: &Path, spec: &str) -> Result<u32, String> {
    let not_found = || {
        let bus = spec.split(',').next().unwrap_or(spec);
        format!("can't find bus: {bus}")
    };
    let (bus, device) = spec.split_once(',').ok_or_else(not_found)?;
    let dir = sys_bus.join(bus).join("devices").join(device);
    let entries = std::fs::read_dir(dir).map_err(|_| not_found())?;
    // tgt keeps the last `host*` entry in alphabetical order.
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|n| n.strip_prefix("host"))
        .filter_map(|n| {
            let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        })
        .next_back()
        .ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_host_directory() {
        let root = std::env::temp_dir().join(format!("tgtadm-bus-{}", std::process::id()));
        let dev = root.join("pci/devices/0000:00:1f.2");
        std::fs::create_dir_all(dev.join("host3")).unwrap();
        std::fs::create_dir_all(dev.join("driver")).unwrap();
        assert_eq!(bus_to_host(&root, "pci,0000:00:1f.2"), Ok(3));
        assert_eq!(
            bus_to_host(&root, "pci,0000:00:1f.3"),
            Err("can't find bus: pci".into())
        );
        assert_eq!(bus_to_host(&root, "pci"), Err("can't find bus: pci".into()));
        std::fs::remove_dir_all(dev.join("host3")).unwrap();
        assert_eq!(
            bus_to_host(&root, "pci,0000:00:1f.2"),
            Err("can't find bus: pci".into())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
