export { createRedis, type RedisRole } from "./connection";
export { Cooldown } from "./cooldown";
export { type Lease, RedisLock, type RedisLockOptions } from "./redis-lock";
