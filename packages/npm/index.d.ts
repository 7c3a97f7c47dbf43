// Types of startIotemu() (index.js).

export interface StartOptions {
  /** MQTT over TLS port; default 8883 (the device SDKs dial only it). */
  mqttPort?: number;
  /** AMQP over TLS port; default 5671 (azure-iothub's Client dials only it). */
  amqpPort?: number;
  /** HTTPS port: default 443 when this process may bind it, else a free port; 0 = free. */
  httpsPort?: number;
  /** Control port (plain HTTP: /health, /ca.pem, /telemetry…); default 0 = free. */
  controlPort?: number;
  /** Fixture files; the built-in quickstart fixture without any. */
  fixtures?: string[];
  /** Durable state directory; in memory without. */
  dataDir?: string;
  /** More iotemu flags. */
  args?: string[];
  /** The iotemu binary; default $IOTEMU_BIN or this package's bin/iotemu. */
  binary?: string;
  /** How long to wait for the emulator to be ready; default 30000. */
  timeoutMs?: number;
  /** Trust the emulator CA in this process (TLS defaults) until stop(); default true. */
  trust?: boolean;
}

export interface Device {
  registrationId: string;
  deviceId: string;
  symmetricKey: string;
  idScope: string;
  provisioningHost: string;
}

export interface Iotemu {
  /** The ready-file document the binary wrote (docs/configuration.md, --ready-file). */
  info: Record<string, unknown>;
  pid: number | undefined;
  controlUrl: string;
  mqttPort: number;
  amqpPort: number;
  /** null when HTTPS is off. */
  httpsPort: number | null;
  caFile: string;
  caPem: string;
  logFile: string;
  idScope: string;
  provisioningHost: string;
  hubHost: string;
  /** HostName without a port: AMQP (5671) works everywhere, the REST clients need HTTPS on 443. */
  hubConnectionString: string;
  eventHubsConnectionString: string;
  dpsServiceConnectionString: string;
  /** What needs port 443 when HTTPS is elsewhere (empty on 443). */
  unavailableTransports: readonly string[];
  get(route: string): Promise<unknown>;
  env(): { NODE_EXTRA_CA_CERTS: string; SSL_CERT_FILE: string; REQUESTS_CA_BUNDLE: string };
  telemetry(deviceId?: string): Promise<Array<{ deviceId: string; body: string; properties: Record<string, string>; [key: string]: unknown }>>;
  device(registrationId?: string, options?: { group?: string }): Promise<Device>;
  stop(): Promise<void>;
}

export function startIotemu(options?: StartOptions): Promise<Iotemu>;
export function binaryPath(): string;
export const AZURE_HTTPS_PORT: 443;
