module github.com/pgwait/pgwait

go 1.26
