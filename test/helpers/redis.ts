/** The tests' redis-server (src/distributed/local-redis.ts: scripts/install-redis.sh's binary, a free loopback port). */
export { freePort, redisMissing, startRedis, type RedisServer } from "../../src/distributed/local-redis.ts";
