// Command imgbake-agent is /init inside the imgbake appliance.
package main

import "github.com/imgbake/imgbake/appliance/agent"

func main() { agent.Main() }
