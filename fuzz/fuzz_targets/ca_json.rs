//! ca.json: read at start-up and on every SIGHUP, and by `mayfly ca provisioner`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mayfly_config::config::CaConfig;
use mayfly_authority::publication::{PublicPorts, Publication};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((config, _unknown)) = CaConfig::parse(text) {
        let _ = Publication::from_config(&config, PublicPorts { https: 9000, http: Some(8080) });
        let global = mayfly_config::claims::Claims::DEFAULT;
        for provisioner in &config.authority.provisioners {
            let _ = mayfly_authority::provisioner::Provisioner::from_config(provisioner, global);
        }
        let _ = config.to_json_pretty();
    }
});
