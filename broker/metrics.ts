/**
 * The broker's Prometheus metrics, registered on the registry the hub passes in.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

export interface BrokerMetrics {
  rejections: Counter<'reason'>
  accepted: Counter<'type'>
  connects: Counter<'result'>
  disconnectsForAbuse: Counter<string>
  clients: Gauge<string>
  pipelineSeconds: Histogram<string>
}

export function createBrokerMetrics (registry: Registry): BrokerMetrics {
  return {
    rejections: new Counter({
      name: 'metanode_rejections_total',
      help: 'Messages and packets rejected, by reason (protocol-v1 §7)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    accepted: new Counter({
      name: 'metanode_messages_accepted_total',
      help: 'Device messages accepted and bridged, by type',
      labelNames: ['type'],
      registers: [registry],
    }),
    connects: new Counter({
      name: 'metanode_connects_total',
      help: 'MQTT CONNECT attempts by result (accepted or the CONNACK return code)',
      labelNames: ['result'],
      registers: [registry],
    }),
    disconnectsForAbuse: new Counter({
      name: 'metanode_abuse_disconnects_total',
      help: 'Clients disconnected for repeated bad traffic or oversize packets',
      registers: [registry],
    }),
    clients: new Gauge({
      name: 'metanode_mqtt_clients',
      help: 'Connected MQTT clients',
      registers: [registry],
    }),
    pipelineSeconds: new Histogram({
      name: 'metanode_up_pipeline_seconds',
      help: 'Time from receiving an up payload to its last bridge record and Ack',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  }
}
