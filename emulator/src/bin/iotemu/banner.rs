//! What `iotemu` prints once it is ready: every endpoint, the CA, the connection strings,
//! then `iotemu ready` (which scripts and tests wait for).

use iotemu::Emulator;

use crate::args::Args;

pub(crate) fn print_banner(emulator: &Emulator, args: &Args) {
    println!(
        "iotemu {} — Azure IoT Hub DPS + IoT Hub emulator",
        env!("CARGO_PKG_VERSION")
    );
    print_endpoints(emulator, args);
    print_services(emulator);
    println!("iotemu ready");
}

/// Where each listener is, and the CA clients must trust.
fn print_endpoints(emulator: &Emulator, args: &Args) {
    println!("  MQTT over TLS:   {}", list(emulator.mqtt_addrs()));
    println!("  AMQP over TLS:   {}", list(emulator.amqp_addrs()));
    match emulator.https_port() {
        Some(_) => println!("  HTTPS (REST):    {}", list(emulator.https_addrs())),
        None => println!(
            "  HTTPS (REST):    off — port 443 could not be bound (needs root or CAP_NET_BIND_SERVICE); use --https-port"
        ),
    }
    if let Some(control) = emulator.control_addr() {
        println!(
            "  Control (HTTP):  http://{control}  (/health, /ca.pem, /telemetry, /registrations, /devices)"
        );
        match emulator.control_token() {
            Some(token) => println!(
                "  Portal:          open http://{control}/?token={token}  (the control port needs this token)"
            ),
            None => println!("  Portal:          open http://{control}/"),
        }
    }
    match &args.ca_out {
        Some(path) => println!("  CA certificate:  {}", path.display()),
        None => println!(
            "  CA certificate:  not written (use --ca-out FILE, or GET /ca.pem on the control port)"
        ),
    }
    println!("  Certificate for: {}", emulator.server_names().join(", "));
}

/// DPS, every hub with its connection strings, and what the fixtures enrolled.
fn print_services(emulator: &Emulator) {
    println!(
        "  DPS:             host {}, ID scope {}",
        emulator.dps_host(),
        emulator.id_scope()
    );
    if let Some(cs) = emulator.dps_service_connection_string() {
        println!("  DPS service:     {cs}");
    }
    for hub in emulator.hubs().all() {
        if let Some(policy) = hub.policies().first() {
            println!(
                "  Hub:             {} — {}",
                hub.host_name(),
                policy.connection_string(hub.host_name())
            );
        } else {
            println!("  Hub:             {}", hub.host_name());
        }
        if let Some(cs) = hub.event_hubs_connection_string(Some(emulator.amqp_port())) {
            let endpoint = hub.event_hubs();
            println!(
                "  Event Hubs:      {} partitions, routes {} — {cs}",
                endpoint.partitions().len(),
                endpoint.routes().sources().join("+"),
            );
        }
    }
    let dps = emulator.dps();
    println!(
        "  Enrollments:     {} individual, {} group(s)",
        dps.enrollment_count(),
        dps.group_count()
    );
}

fn list(addrs: &[std::net::SocketAddr]) -> String {
    let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    addrs.join(", ")
}
