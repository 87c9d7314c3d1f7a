export { createRedis, type RedisRole } from "./connection";
