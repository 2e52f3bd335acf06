module mayfly.test/crlcheck

go 1.19
