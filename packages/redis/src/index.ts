export {
  type ClusterNode,
  closeRedis,
  createRedis,
  type RedisClient,
  type RedisConnectionOptions,
  type RedisRole,
  type RedisTarget,
  redisTarget,
} from "./connection";
export { Cooldown } from "./cooldown";
export { type KeyPrefix, toKeyPrefix } from "./key-prefix";
export { type Lease, RedisLock, type RedisLockOptions } from "./redis-lock";
