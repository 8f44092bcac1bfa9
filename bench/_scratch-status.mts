import { JadeClient } from "../src/client/client.ts";
import { jetstreamManager } from "@nats-io/jetstream";
const c = await JadeClient.connect({ servers: process.argv[2]! });
console.log(JSON.stringify(await c.clusterStatus(), null, 1));
const jsm = await jetstreamManager(c.nc);
for await (const s of jsm.streams.list()) console.log(s.config.name, JSON.stringify(s.state));
for await (const s of jsm.streams.list()) for await (const ci of jsm.consumers.list(s.config.name)) console.log(s.config.name, ci.name, "delivered", JSON.stringify(ci.delivered), "ack_floor", JSON.stringify(ci.ack_floor), "pending", ci.num_pending, "ack_pending", ci.num_ack_pending, "waiting", ci.num_waiting);
await c.close();
