package wasm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/config"
)

// RedisClients holds one go-redis connection pool per configured Redis
// server (HostConfig.Redis), for the Higress extensions proxy_redis_init
// and proxy_redis_call. The Host that builds it owns it and closes it in
// Close; a reload that builds a new Host builds new pools. Safe for
// concurrent use.
type RedisClients struct {
	list    []proxy.RedisConfig
	clients map[string]*redisClient // by entry name
}

// redisClient is one configured server: its pool and its call timeout.
type redisClient struct {
	name    string
	rdb     *redis.Client
	timeout time.Duration
}

// NewRedisClients builds a pool per entry of list (checked as
// config.Config.Validate does), reading each password_file. No connection
// is opened until the first call. Errors name the entry and the field.
func NewRedisClients(list []proxy.RedisConfig) (*RedisClients, error) {
	c := &config.Config{Redis: list}
	if err := c.ValidateRedis(); err != nil {
		return nil, fmt.Errorf("wasm: %w", err)
	}
	rc := &RedisClients{list: append([]proxy.RedisConfig(nil), list...), clients: make(map[string]*redisClient, len(list))}
	for _, r := range rc.list {
		password := ""
		if r.PasswordFile != "" {
			b, err := os.ReadFile(r.PasswordFile)
			if err != nil {
				rc.Close()
				return nil, fmt.Errorf("wasm: redis %q: password_file: %w", r.Name, err)
			}
			password = strings.TrimRight(string(b), "\r\n")
		}
		timeout := r.EffectiveTimeout()
		opt := &redis.Options{
			Addr:     r.Address,
			Username: r.Username,
			Password: password,
			DB:       r.DB,
			// RESP2 replies map one to one onto what the plugin reads
			// back (appendRESP); RESP3 would need HELLO and bring types
			// Higress plugins do not parse.
			Protocol:        2,
			DisableIdentity: true,
			// A call runs once: INCR or EVAL sent twice after a broken
			// connection would count twice.
			MaxRetries: -1,
			// One dial per attempt: go-redis would retry a refused dial 5
			// times 100 ms apart, turning "Redis is down" into a timeout.
			DialerRetries:         1,
			DialTimeout:           timeout,
			ReadTimeout:           timeout,
			WriteTimeout:          timeout,
			PoolTimeout:           timeout,
			ContextTimeoutEnabled: true,
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
		}
		if r.TLS {
			host, _, _ := net.SplitHostPort(r.Address)
			opt.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		rc.clients[r.Name] = &redisClient{name: r.Name, rdb: redis.NewClient(opt), timeout: timeout}
	}
	return rc, nil
}

// lookup returns the client a plugin's cluster name selects (see
// config.RedisByCluster), or nil.
func (rc *RedisClients) lookup(cluster string) *redisClient {
	if rc == nil {
		return nil
	}
	r := config.RedisByCluster(rc.list, cluster)
	if r == nil {
		return nil
	}
	return rc.clients[r.Name]
}

// Close closes every pool. It is idempotent; calls in flight fail.
func (rc *RedisClients) Close() error {
	if rc == nil {
		return nil
	}
	var errs []error
	for _, c := range rc.clients {
		if err := c.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Redis call statuses, the status argument of
// proxy_on_redis_call_response: 0 is success (the reply, possibly a Redis
// error reply, is in buffer 9); anything else is a failure with an empty
// buffer, as in Higress, whose plugins treat every non-zero status as
// "cannot reach Redis".
const (
	redisStatusOK      = 0
	redisStatusFailed  = 1 // connection refused, reset, pool closed, …
	redisStatusTimeout = 2 // no answer within the timeout
)

// do sends one command and returns the RESP reply, or the failure status
// and a message.
func (c *redisClient) do(ctx context.Context, args []any) (reply []byte, st uint32, msg string) {
	v, err := c.rdb.Do(ctx, args...).Result()
	var rerr redis.Error
	switch {
	case errors.Is(err, redis.Nil):
		return []byte("$-1\r\n"), redisStatusOK, ""
	case err != nil && errors.As(err, &rerr) && !isNetworkError(err):
		return appendRESPError(nil, rerr.Error()), redisStatusOK, ""
	case err != nil:
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return nil, redisStatusTimeout, "timeout"
		}
		return nil, redisStatusFailed, err.Error()
	}
	out, ok := appendRESP(nil, v, 0)
	if !ok {
		return nil, redisStatusFailed, fmt.Sprintf("reply of type %T cannot be encoded", v)
	}
	return out, redisStatusOK, ""
}

// isNetworkError reports whether err came from the connection rather
// than from the server's reply (go-redis's errors for a closed pool or
// connection also satisfy redis.Error in some versions).
func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, redis.ErrClosed) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
