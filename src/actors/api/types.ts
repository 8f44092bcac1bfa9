/** What the API handlers are given: the node's actors they call. */
import type { Catalog } from "../cluster/catalog.ts";
import type { Coordinator } from "../control/coordinator.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import type { ReadRouter } from "../read/router.ts";
import type { ReplicaHost } from "../replica/host.ts";
import type { Writer } from "../write/writer.ts";
import type { KV } from "@nats-io/kv";
import type { Backups } from "../backup/service.ts";
import type { KeyStore } from "../keys/store.ts";
import type { TransactionService } from "../txn/service.ts";
import type { TxnAdmin } from "../txn/admin.ts";
import type { ClusterConfig } from "../config/store.ts";
import type { Departures } from "../cluster/departures.ts";

export interface ApiDeps {
  nodeId: string;
  catalog: Catalog;
  writer: Writer;
  router: ReadRouter;
  host: ReplicaHost;
  membership: Membership;
  placements: PlacementStore;
  coordinator: Coordinator;
  /** Backups and restores: their records, for the status. */
  backups: Backups;
  /** KV `jade_retention`: each shard log's state and purge floor, as the coordinator last wrote it. */
  retention: KV;
  /** KV `jade_config`: the node sets (which nodes are drained). */
  config: KV;
  /** API keys for HTTP (`admin.keys.*`). */
  keys: KeyStore;
  /** The cluster's settings (`admin.config.*`) and the revision this node runs. */
  settings: ClusterConfig;
  /** Nodes that stopped on purpose and are expected back. */
  departures: Departures;
  /** Transactions (`jade.v1.<collection>.transaction`). */
  txns: TransactionService;
  /** Transaction records for operators (`admin.txns.*`). */
  txnAdmin: TxnAdmin;
}
