package config

import (
	"net"
	"strconv"
	"strings"
	"time"
)

// DefaultRedisTimeout bounds each Redis call (and the dial of a new
// connection) when RedisConfig.Timeout is 0.
const DefaultRedisTimeout = time.Second

// RedisConfig declares one Redis server that plugins reach with the
// Higress Proxy-Wasm extensions (proxy_redis_init, proxy_redis_call). A
// plugin names it by Name, or the Istio way as a Higress plugin's
// configuration does: "outbound|6379||redis.static" selects the entry
// named "redis.static" (the part after "||").
type RedisConfig struct {
	// Name is what plugins pass as the cluster (required, unique, no '|').
	Name string `yaml:"name"`
	// Address is the server's host:port (required).
	Address string `yaml:"address"`
	// Username is the ACL user (Redis 6+). Default: none ("default").
	Username string `yaml:"username"`
	// PasswordFile holds the password (one line; a trailing newline is
	// dropped). It is read when the plugin host starts. Default: no
	// password. Credentials a plugin passes to proxy_redis_init are
	// ignored: the operator's configuration decides what Sluice sends.
	PasswordFile string `yaml:"password_file"`
	// DB is the database number selected on each connection. Default 0.
	DB int `yaml:"db"`
	// TLS connects with TLS (system roots, the address's host as server
	// name). Default false.
	TLS bool `yaml:"tls"`
	// Timeout bounds each call, connecting included: a plugin's call that
	// gets no answer within it fails (the plugin sees a non-zero status).
	// A plugin may ask for less in proxy_redis_init, never for more.
	// Default 1s (DefaultRedisTimeout).
	Timeout Duration `yaml:"timeout"`
}

// EffectiveTimeout is Timeout, or DefaultRedisTimeout when it is 0.
func (r *RedisConfig) EffectiveTimeout() time.Duration {
	if r.Timeout == 0 {
		return DefaultRedisTimeout
	}
	return time.Duration(r.Timeout)
}

// ValidateRedis checks the redis: list: names present, unique and free of
// '|' (the Istio cluster separator), addresses host:port with a port in
// 1–65535, db and timeout not negative.
func (c *Config) ValidateRedis() error {
	names := newNameSet("redis name", len(c.Redis))
	for i, r := range c.Redis {
		f := "redis[" + strconv.Itoa(i) + "]"
		if err := names.add(f+".name", r.Name); err != nil {
			return err
		}
		if strings.ContainsAny(r.Name, "| \t") {
			return fieldErr(f+".name", "%q must not contain '|' or spaces (plugins name it alone or after \"||\" in an Istio cluster name)", r.Name)
		}
		if r.Address == "" {
			return fieldErr(f+".address", "must not be empty (want host:port)")
		}
		host, port, err := net.SplitHostPort(r.Address)
		if err != nil || host == "" {
			return fieldErr(f+".address", "%q is not host:port", r.Address)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fieldErr(f+".address", "port %q of %q is not a number in 1-65535", port, r.Address)
		}
		if r.DB < 0 {
			return fieldErr(f+".db", "must not be negative, got %d", r.DB)
		}
		if r.Timeout < 0 {
			return fieldErr(f+".timeout", "must not be negative, got %s", r.Timeout)
		}
	}
	return nil
}

// RedisByCluster returns the entry of list a plugin's cluster name
// selects: the entry of that name, or for an Istio-style name
// ("outbound|6379||redis.static") the entry named by the part after the
// last "||". The empty name selects the only entry when list has exactly
// one (a Sluice extension: a plugin need not repeat the operator's
// name). It returns nil when none matches.
func RedisByCluster(list []RedisConfig, cluster string) *RedisConfig {
	if cluster == "" && len(list) == 1 {
		return &list[0]
	}
	name := cluster
	if i := strings.LastIndex(cluster, "||"); i >= 0 {
		name = cluster[i+2:]
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}
