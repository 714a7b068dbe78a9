// Package deploy holds the deployment descriptions of CloudCommerce. Its Go
// side only embeds topology.json, the single declarative list of AWS
// resources that both the Go provisioner and Terraform read.
package deploy

import _ "embed"

// TopologyJSON is the content of topology.json.
//
//go:embed topology.json
var TopologyJSON []byte
