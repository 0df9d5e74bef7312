module aiplatexample

go 1.19
