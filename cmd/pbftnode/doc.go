// Command pbftnode runs and exercises pbftnode clusters:
//
//	pbftnode demo                       4 in-process replicas, concurrent clients, a summary
//	pbftnode testnet --replicas N --dir DIR [--base-port P]
//	                                    keys and configuration for N separate processes
//	pbftnode run --home DIR/nodeI       one replica until SIGINT or SIGTERM
//	pbftnode client --dir DIR [--json] put K V | get K | delete K | cas K OLD NEW
//	                                    one operation through consensus; exit status
//	                                    0 executed, 2 usage, 3 outcome unknown, 4 refused
package main
