package proxy

import "github.com/sluice-proxy/sluice/proxy/config"

// The configuration lives in package config (types, YAML loading,
// validation, defaults, the builder). proxy re-exports the names its
// callers use, as aliases, so that proxy.Config and config.Config are one
// type and a program that builds a server needs one import.
type (
	Config                 = config.Config
	ConfigError            = config.Error
	UpstreamConfig         = config.UpstreamConfig
	HealthCheckConfig      = config.HealthCheckConfig
	PassiveEjectionConfig  = config.PassiveEjectionConfig
	RouteConfig            = config.RouteConfig
	RouteMatch             = config.RouteMatch
	LogConfig              = config.LogConfig
	TLSConfig              = config.TLSConfig
	CertificateConfig      = config.CertificateConfig
	UpstreamTLSConfig      = config.UpstreamTLSConfig
	AdminConfig            = config.AdminConfig
	PluginConfig           = config.PluginConfig
	PluginEnvironment      = config.PluginEnvironment
	PluginLogLimit         = config.PluginLogLimit
	PluginSharedData       = config.PluginSharedData
	PluginSharedDataPrefix = config.PluginSharedDataPrefix
	RedisConfig            = config.RedisConfig
	Duration               = config.Duration
	ByteSize               = config.ByteSize
	RawConfig              = config.RawConfig
)

// Re-exported constants (see package config).
const (
	DefaultMaxConcurrentRequests   = config.DefaultMaxConcurrentRequests
	FailClosed                     = config.FailClosed
	FailOpen                       = config.FailOpen
	DefaultPluginCallTimeout       = config.DefaultPluginCallTimeout
	DefaultPluginMemoryLimit       = config.DefaultPluginMemoryLimit
	DefaultPluginLogLinesPerSecond = config.DefaultPluginLogLinesPerSecond
	DefaultPluginLogBurst          = config.DefaultPluginLogBurst
	LBRoundRobin                   = config.LBRoundRobin
	LBLeastRequest                 = config.LBLeastRequest
	LBRandom                       = config.LBRandom
	LBLeastQueue                   = config.LBLeastQueue
)

// NewConfig is config.New: a Config with every default and no upstreams.
func NewConfig() *Config { return config.New() }

// LoadConfig is config.Load: read, parse and validate a YAML file.
func LoadConfig(path string) (*Config, error) { return config.Load(path) }

// ParseConfig is config.Parse: parse YAML text, without validating it.
func ParseConfig(b []byte) (*Config, error) { return config.Parse(b) }
