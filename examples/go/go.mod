module example.com/jobrunner-worker

go 1.19
