package platform_test

import "github.com/mqim/mqim/config"

type imtestConfig = config.Config
